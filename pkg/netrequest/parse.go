package netrequest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// errNamespace explains why a namespace is refused: NPWG networks are
// namespaced NetworkAttachmentDefinitions, these are not.
var errNamespace = errors.New("networks are node-level and have no namespace")

// npwgKeys are the keys of the NPWG network selection element (v1.3,
// 4.1.2.1) this project does not implement. They get a clearer error than
// keys that are simply unknown.
var npwgKeys = []string{"default-route", "cni-args", "portMappings", "bandwidth", "infiniband-guid", "ipam-claim-reference"}

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

// parseJSON parses the JSON list form. It walks tokens rather than
// unmarshalling into a struct because encoding/json matches keys
// case-insensitively, lets the last of duplicate keys win and would drop
// unknown keys silently; the NPWG keys are exact and unknown ones must fail.
func parseJSON(value string) ([]Request, error) {
	dec := json.NewDecoder(strings.NewReader(value))
	if _, err := dec.Token(); err != nil { // '[', checked by the caller
		return nil, fmt.Errorf("networks: %w", invalidJSON(err))
	}
	var reqs []Request
	var errs []error
	for i := 0; dec.More(); i++ {
		r, problems, err := parseJSONElement(dec)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", label(i, r.Name), err)
		}
		for _, p := range problems {
			errs = append(errs, fmt.Errorf("%s: %w", label(i, r.Name), p))
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

// parseJSONElement reads one object of the list. problems are key-level
// errors found while the stream stayed readable (so the caller can label
// them with the name, which may come after them); err means the stream is
// broken and parsing stops.
func parseJSONElement(dec *json.Decoder) (r Request, problems []error, err error) {
	tok, err := dec.Token()
	if err != nil {
		return r, nil, invalidJSON(err)
	}
	if tok != json.Delim('{') {
		return r, nil, errors.New("must be a JSON object")
	}
	var seen [4]bool // name, interface, ips, mac
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return r, nil, invalidJSON(err)
		}
		key, _ := tok.(string) // object keys are always strings
		var dst any
		var seenIdx int
		switch key {
		case "name":
			dst, seenIdx = &r.Name, 0
		case "interface":
			dst, seenIdx = &r.Interface, 1
		case "ips":
			dst, seenIdx = &r.IPs, 2
		case "mac":
			dst, seenIdx = &r.MAC, 3
		default:
			switch {
			case key == "namespace":
				problems = append(problems, fmt.Errorf("key \"namespace\": %w: remove the key", errNamespace))
			case slices.Contains(npwgKeys, key):
				problems = append(problems, fmt.Errorf("key %q of the NPWG network selection element is not supported", key))
			default:
				problems = append(problems, fmt.Errorf("unknown key %q", key))
			}
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return r, nil, fmt.Errorf("key %q: %w", key, invalidJSON(err))
			}
			continue
		}
		if seen[seenIdx] {
			problems = append(problems, fmt.Errorf("duplicate key %q", key))
		}
		seen[seenIdx] = true
		if err := dec.Decode(dst); err != nil {
			return r, nil, fmt.Errorf("key %q: %w", key, invalidJSON(err))
		}
		if key == "ips" && r.IPs != nil && len(r.IPs) == 0 {
			problems = append(problems, errors.New(`"ips" must not be empty: omit the key instead`))
		}
	}
	if _, err := dec.Token(); err != nil { // '}'
		return r, nil, invalidJSON(err)
	}
	return r, problems, nil
}

// invalidJSON wraps a decoding error. The decoder reports a value cut short
// as io.EOF, which reads as success in a message.
func invalidJSON(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return err // well-formed JSON of the wrong type; says so itself
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
