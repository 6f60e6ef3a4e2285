package netrequest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	strictjson "sigs.k8s.io/json"
)

// errNamespace explains why a namespace is refused: NPWG networks are
// namespaced NetworkAttachmentDefinitions, these are not.
var errNamespace = errors.New("networks are node-level and have no namespace")

// npwgKeys are the keys of the NPWG network selection element (v1.3,
// 4.1.2.1) this project does not implement. They get a clearer error than
// keys that are simply unknown.
var npwgKeys = []string{"default-route", "cni-args", "portMappings", "bandwidth", "infiniband-guid", "ipam-claim-reference"}

// requestKeys are the JSON keys of Request.
var requestKeys = []string{"name", "interface", "ips", "mac"}

// Parse parses a pod's AnnotationKey value, validates it and assigns the
// interface names left empty: ParseAnnotation, then Validate, then
// AssignInterfaces. An empty value (or an empty JSON list) is no request:
// nil and no error.
func Parse(value string) ([]Request, error) {
	reqs, err := ParseAnnotation(value)
	if err != nil || len(reqs) == 0 {
		return nil, err
	}
	if err := Validate(reqs); err != nil {
		return nil, err
	}
	return AssignInterfaces(reqs), nil
}

// ParseAnnotation parses a pod's AnnotationKey value, checking syntax only
// (see Validate for the rules on names, interfaces, addresses). The value is
// a JSON list of {"name", "interface", "ips", "mac"} objects when it starts
// with '[' after trimming whitespace, else a comma-separated list of
// name[@interface] with whitespace around items trimmed. An empty value is
// no request: nil and no error. Empty items, a namespace (ns/name, or the
// JSON key "namespace"), and JSON keys other than the four above are
// errors, each naming the entry.
func ParseAnnotation(value string) ([]Request, error) {
	value = strings.TrimSpace(value)
	switch {
	case value == "":
		return nil, nil
	case value[0] == '[':
		return parseJSON(value)
	case value[0] == '{':
		return nil, errors.New(`networks: the JSON form is a list: wrap the object in [ ]`)
	}
	return parseText(value)
}

// parseText parses the name[@interface],... form. Names and interfaces are
// substrings of value: nothing is copied.
func parseText(value string) ([]Request, error) {
	reqs := make([]Request, 0, min(strings.Count(value, ",")+1, MaxNetworks+1))
	var errs []error
	for i := 0; ; i++ {
		item, rest, more := strings.Cut(value, ",")
		item = strings.TrimSpace(item)
		name, ifname, hasIf := strings.Cut(item, "@")
		var err error
		switch {
		case item == "": // also a trailing comma
			err = errors.New("empty entry")
		case strings.Contains(name, "/"):
			err = fmt.Errorf("%w: use %q", errNamespace, name[strings.LastIndexByte(name, '/')+1:])
		case hasIf && ifname == "":
			err = errors.New("empty interface after '@'")
		case strings.Contains(ifname, "@"):
			err = errors.New("more than one '@'")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", label(i, item), err))
		}
		reqs = append(reqs, Request{Name: name, Interface: ifname})
		if !more {
			break
		}
		value = rest
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return reqs, nil
}

// parseJSON parses the JSON list form. Elements are decoded one at a time
// so that every error names its element. encoding/json would match keys
// case-insensitively, let the last of duplicate keys win and drop unknown
// keys; sigs.k8s.io/json's strict mode matches them exactly and reports
// the duplicate and unknown ones.
func parseJSON(value string) ([]Request, error) {
	dec := json.NewDecoder(strings.NewReader(value))
	if _, err := dec.Token(); err != nil { // '[', checked by the caller
		return nil, fmt.Errorf("networks: %w", invalidJSON(err))
	}
	var reqs []Request
	var errs []error
	for i := 0; dec.More(); i++ {
		var elem json.RawMessage
		if err := dec.Decode(&elem); err != nil {
			return nil, fmt.Errorf("%s: %w", label(i, ""), invalidJSON(err))
		}
		if elem[0] != '{' { // null would decode to an empty request
			return nil, fmt.Errorf("%s: must be a JSON object", label(i, ""))
		}
		var r Request
		// elem is well-formed: err can only be a type error.
		problems, err := strictjson.UnmarshalStrict(elem, &r)
		if err != nil {
			var typeErr *json.UnmarshalTypeError
			if errors.As(err, &typeErr) {
				err = fmt.Errorf("key %q: %w", typeErr.Field, err)
			}
			return nil, fmt.Errorf("%s: %w", label(i, r.Name), err)
		}
		if r.IPs != nil && len(r.IPs) == 0 {
			problems = append(problems, errors.New(`"ips" must not be empty: omit the key instead`))
		}
		for _, p := range problems {
			errs = append(errs, fmt.Errorf("%s: %w", label(i, r.Name), keyProblem(p)))
		}
		reqs = append(reqs, r)
	}
	if _, err := dec.Token(); err != nil { // ']'
		return nil, fmt.Errorf("networks: %w", invalidJSON(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			err = errors.New("data after the list")
		}
		return nil, fmt.Errorf("networks: %w", invalidJSON(err))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return reqs, nil
}

// keyProblem rewords a strict error of sigs.k8s.io/json, whose field path
// is the key (Request is flat). Its kind is not exported: a key of Request
// can only be a duplicate, any other only unknown.
func keyProblem(err error) error {
	var fe strictjson.FieldError
	if !errors.As(err, &fe) {
		return err
	}
	switch key := fe.FieldPath(); {
	case slices.Contains(requestKeys, key):
		return fmt.Errorf("duplicate key %q", key)
	case key == "namespace":
		return fmt.Errorf("key \"namespace\": %w: remove the key", errNamespace)
	case slices.Contains(npwgKeys, key):
		return fmt.Errorf("key %q of the NPWG network selection element is not supported", key)
	default:
		return fmt.Errorf("unknown key %q", key)
	}
}

// invalidJSON wraps a syntax error. The decoder reports a value cut short
// as io.EOF, which reads as success in a message.
func invalidJSON(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("invalid JSON: %w", err)
}

// ParseNodeNetworks parses a node's AnnotationKey value: network names
// separated by commas, whitespace around them trimmed. It returns the names
// sorted and without duplicates (the proxy writes them that way; other
// writers need not), nil for an empty value, and an error naming every
// entry that is empty or not a DNS-1123 label.
func ParseNodeNetworks(value string) ([]string, error) {
	value = strings.TrimSpace(value)
	if value == "" {
		return nil, nil
	}
	names := make([]string, 0, strings.Count(value, ",")+1)
	var errs []error
	for i := 0; ; i++ {
		item, rest, more := strings.Cut(value, ",")
		item = strings.TrimSpace(item)
		if item == "" {
			errs = append(errs, fmt.Errorf("%s: empty entry", label(i, item)))
		} else if msg := checkName(item); msg != "" {
			errs = append(errs, fmt.Errorf("%s: %s", label(i, item), msg))
		}
		names = append(names, item)
		if !more {
			break
		}
		value = rest
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if !slices.IsSorted(names) {
		slices.Sort(names)
	}
	return slices.Compact(names), nil
}

// FormatNodeNetworks returns the node AnnotationKey value for names: sorted,
// without duplicates or empty names, comma-joined. names is not modified.
func FormatNodeNetworks(names []string) string {
	if slices.IsSorted(names) && !hasDupOrEmpty(names) {
		return strings.Join(names, ",") // the usual case: no copy
	}
	s := slices.Clone(names)
	slices.Sort(s)
	s = slices.Compact(s)
	if len(s) > 0 && s[0] == "" {
		s = s[1:]
	}
	return strings.Join(s, ",")
}

// hasDupOrEmpty reports whether sorted names has adjacent duplicates or an
// empty name (which sorts first).
func hasDupOrEmpty(sorted []string) bool {
	if len(sorted) > 0 && sorted[0] == "" {
		return true
	}
	for i := 1; i < len(sorted); i++ {
		if sorted[i] == sorted[i-1] {
			return true
		}
	}
	return false
}
