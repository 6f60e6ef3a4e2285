package netrequest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"

	strictjson "sigs.k8s.io/json"
)

// errNamespace explains why a namespace is refused: NPWG networks are
// namespaced NetworkAttachmentDefinitions, these are not.
var errNamespace = errors.New("networks are node-level and have no namespace")

// unsupportedKeys are the keys of the NPWG network selection element (v1.3,
// 4.1.2.1) this project does not implement. They get a clearer error than
// keys that are simply unknown.
var unsupportedKeys = []string{"infiniband-guid", "ipam-claim-reference"}

// requestKeys, portMappingKeys and bandwidthKeys are the JSON keys of
// Request, PortMapping and Bandwidth: strict decoding can only find such a
// key twice, never unknown.
var (
	requestKeys     = []string{"name", "interface", "ips", "mac", "default-route", "cni-args", "portMappings", "bandwidth"}
	portMappingKeys = []string{"hostPort", "containerPort", "protocol", "hostIP"}
	bandwidthKeys   = []string{"ingressRate", "ingressBurst", "egressRate", "egressBurst"}
)

// Parse parses a pod's AnnotationKey value, validates it and assigns the
// interface names left empty: ParseAnnotation, then Validate, then
// AssignInterfaces. An empty value (or an empty JSON list) is no request:
// nil and no error. An error names every problem it has room for, each with
// its entry, within MaxErrorLen.
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
// (see Validate for the rules on names, interfaces, addresses and the other
// keys). The value is a JSON list of objects with the keys of Request
// (name, interface, ips, mac, default-route, cni-args, portMappings,
// bandwidth) when it starts with '[' after trimming whitespace, else a
// comma-separated list of name[@interface] with whitespace around items
// trimmed: the text form has no other keys. An empty value is no request:
// nil and no error. Empty items, a namespace (ns/name, or the JSON key
// "namespace"), keys the objects do not have and keys given twice (in
// portMappings and bandwidth too; cni-args are the plugins' business),
// values of the wrong JSON type and empty lists are errors, each naming the
// entry; the error is at most MaxErrorLen bytes. CNIArgs are returned as
// json.Marshal writes them (compact), so that a request parses back from
// its JSON the same.
func ParseAnnotation(value string) ([]Request, error) {
	value = strings.TrimSpace(value)
	switch {
	case value == "":
		return nil, nil
	case value[0] == '[':
		reqs, err := parseJSON(value)
		return reqs, BoundError(err)
	case value[0] == '{':
		return nil, errors.New(`networks: the JSON form is a list: wrap the object in [ ]`)
	}
	reqs, err := parseText(value)
	return reqs, BoundError(err)
}

// parseText parses the name[@interface],... form. Names and interfaces are
// substrings of value: nothing is copied.
func parseText(value string) ([]Request, error) {
	reqs := make([]Request, 0, min(strings.Count(value, ",")+1, MaxNetworks+1))
	var p problems
	for i := 0; !p.full(); i++ {
		item, rest, more := strings.Cut(value, ",")
		item = strings.TrimSpace(item)
		name, ifname, hasIf := strings.Cut(item, "@")
		switch {
		case item == "": // also a trailing comma
			p.addf(i, item, "empty entry")
		case strings.Contains(name, "/"):
			p.addf(i, item, "%w: use %s", errNamespace, quote(name[strings.LastIndexByte(name, '/')+1:]))
		case hasIf && ifname == "":
			p.addf(i, item, "empty interface after '@'")
		case strings.Contains(ifname, "@"):
			p.addf(i, item, "more than one '@'")
		}
		reqs = append(reqs, Request{Name: name, Interface: ifname})
		if !more {
			break
		}
		value = rest
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return reqs, nil
}

// parseJSON parses the JSON list form. Elements are decoded one at a time
// so that every error names its element.
func parseJSON(value string) ([]Request, error) {
	dec := json.NewDecoder(strings.NewReader(value))
	if _, err := dec.Token(); err != nil { // '[', checked by the caller
		return nil, fmt.Errorf("networks: %w", invalidJSON(err))
	}
	var reqs []Request
	var p problems
	for i := 0; dec.More() && !p.full(); i++ {
		var elem json.RawMessage
		if err := dec.Decode(&elem); err != nil {
			return nil, fmt.Errorf("%s: %w", label(i, ""), invalidJSON(err))
		}
		r, probs, err := decodeRequest(elem)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", label(i, r.Name), err)
		}
		for _, err := range probs {
			p.addf(i, r.Name, "%w", err)
		}
		reqs = append(reqs, r)
	}
	if !p.full() {
		if err := endOfList(dec); err != nil {
			return nil, fmt.Errorf("networks: %w", invalidJSON(err))
		}
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return reqs, nil
}

// endOfList reads the ']' that ends the list and checks that nothing
// follows it.
func endOfList(dec *json.Decoder) error {
	if _, err := dec.Token(); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			err = errors.New("data after the list")
		}
		return err
	}
	return nil
}

// decodeRequest decodes one element of the list. encoding/json would match
// keys case-insensitively, let the last of duplicate keys win and drop
// unknown keys; sigs.k8s.io/json's strict mode matches them exactly and
// reports the duplicate and unknown ones, at any depth. It returns the
// problems with keys, or the error that stopped decoding: elem is
// well-formed, so a value of the wrong type.
func decodeRequest(elem json.RawMessage) (Request, []error, error) {
	var r Request
	if kind := jsonKind(elem); kind != "an object" { // null would decode to an empty request
		return r, nil, fmt.Errorf("must be a JSON object, got %s", kind)
	}
	strict, err := strictjson.UnmarshalStrict(elem, &r)
	if err != nil {
		return r, nil, typeProblem(err)
	}
	if len(r.CNIArgs) > 0 {
		// As json.Marshal writes them, so that the request parses back
		// from its JSON the same.
		if r.CNIArgs, err = json.Marshal(r.CNIArgs); err != nil {
			return r, nil, fmt.Errorf("key \"cni-args\": %w", err)
		}
	}
	probs := make([]error, 0, len(strict)+3)
	for _, err := range strict {
		probs = append(probs, keyProblem(err))
	}
	return r, append(probs, emptyLists(&r)...), nil
}

// emptyLists returns a problem for each list key given as []: omitted, it
// means the same, and a request marshals without it.
func emptyLists(r *Request) []error {
	var probs []error
	for _, l := range []struct {
		key   string
		empty bool
	}{
		{"ips", r.IPs != nil && len(r.IPs) == 0},
		{"default-route", r.DefaultRoute != nil && len(r.DefaultRoute) == 0},
		{"portMappings", r.PortMappings != nil && len(r.PortMappings) == 0},
	} {
		if l.empty {
			probs = append(probs, fmt.Errorf("%q must not be empty: omit the key instead", l.key))
		}
	}
	return probs
}

// keyProblem rewords a strict error of sigs.k8s.io/json, whose field path
// is a key ("mac") or a nested one ("portMappings[0].hostPort"). The
// error's kind is not exported: a key the objects have can only be a
// duplicate, any other only unknown.
func keyProblem(err error) error {
	var fe strictjson.FieldError
	if !errors.As(err, &fe) {
		return err
	}
	switch path := fe.FieldPath(); {
	case knownKey(path):
		return fmt.Errorf("duplicate key %s", quote(path))
	case path == "namespace":
		return fmt.Errorf("key \"namespace\": %w: remove the key", errNamespace)
	case slices.Contains(unsupportedKeys, path):
		return fmt.Errorf("key %q of the NPWG network selection element is not supported", path)
	default:
		return fmt.Errorf("unknown key %s", quote(path))
	}
}

// knownKey reports whether path, a strict error's field path such as
// "mac", "bandwidth.egressRate" or "portMappings[2].hostPort", is a key
// the objects have.
func knownKey(path string) bool {
	if leaf, ok := strings.CutPrefix(path, "bandwidth."); ok {
		return slices.Contains(bandwidthKeys, leaf)
	}
	if rest, ok := strings.CutPrefix(path, "portMappings["); ok {
		_, leaf, ok := strings.Cut(rest, "].")
		return ok && slices.Contains(portMappingKeys, leaf)
	}
	return slices.Contains(requestKeys, path)
}

// typeError is a JSON value of the wrong type. Its message names the key
// and the types but not the value, which a hostile request makes large (a
// number of 200 KiB); it wraps the decoder's error.
type typeError struct {
	err *json.UnmarshalTypeError
}

func (e *typeError) Error() string {
	return fmt.Sprintf("key %s: want %s, got %s", quote(e.err.Field), jsonType(e.err.Type), valueKind(e.err.Value))
}

func (e *typeError) Unwrap() error { return e.err }

// typeProblem returns err, a decoding error of a well-formed element, as a
// typeError when it is one.
func typeProblem(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return &typeError{err: te}
	}
	return err
}

// valueKind names the kind of a JSON value as the decoder describes it in
// a type error: "string", "number -5", "array"...
func valueKind(v string) string {
	switch kind, _, _ := strings.Cut(v, " "); kind {
	case "array":
		return "a list"
	case "object":
		return "an object"
	case "bool":
		return "a boolean"
	case "number", "string":
		return "a " + kind
	default:
		return quote(kind)
	}
}

// jsonType names the JSON value that decodes into t.
func jsonType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Pointer:
		return jsonType(t.Elem())
	case reflect.String:
		return "a string"
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Int:
		return fmt.Sprintf("a %d-bit integer", t.Bits())
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Struct, reflect.Map:
		return "an object"
	default:
		return t.Kind().String()
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
// writers need not), nil for an empty value, and an error naming each entry
// that is empty or not a DNS-1123 label, as many as fit in MaxErrorLen.
func ParseNodeNetworks(value string) ([]string, error) {
	value = strings.TrimSpace(value)
	if value == "" {
		return nil, nil
	}
	names := make([]string, 0, strings.Count(value, ",")+1)
	var p problems
	for i := 0; !p.full(); i++ {
		item, rest, more := strings.Cut(value, ",")
		item = strings.TrimSpace(item)
		if item == "" {
			p.addf(i, item, "empty entry")
		} else if msg := checkName(item); msg != "" {
			p.addf(i, item, "%s", msg)
		}
		names = append(names, item)
		if !more {
			break
		}
		value = rest
	}
	if err := p.err(); err != nil {
		return nil, BoundError(err)
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
