package attachment

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"

	"sigs.k8s.io/pod-networks/cri-proxy/pkg/catalog"
)

// withCNIArgs returns config, a network's config list, with the JSON object
// cniArgs merged into args.cni of every plugin config, the convention
// (CNI CONVENTIONS.md, "args in network config") by which NPWG's cni-args
// reach the plugins: host-local reads args.cni.ips, tuning args.cni.mac.
// Keys of cniArgs win over those already in the config; the config's other
// keys are kept as they are. Without cniArgs config is returned unchanged.
//
// The result is what Attach records and ADD and DEL are given, so DEL sees
// the very args ADD saw, whatever happens to the network's file.
func withCNIArgs(config []byte, cniArgs json.RawMessage) ([]byte, error) {
	if !cniArgsSet(cniArgs) {
		return config, nil
	}
	add, err := jsonObject(cniArgs)
	if err != nil {
		return nil, fmt.Errorf("cni-args: %w", err)
	}
	list, err := catalog.ParseConfig(config)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	// list.Bytes is a config list even when the file held one plugin's
	// config. Raw messages keep the other keys as they are: the list's as
	// in the file, the plugins' as libcni will pass them anyway.
	var top map[string]json.RawMessage
	if err := json.Unmarshal(list.Bytes, &top); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	plugins := make([]json.RawMessage, len(list.Plugins))
	for i, p := range list.Plugins {
		if plugins[i], err = mergeArgsCNI(p.Bytes, add); err != nil {
			return nil, fmt.Errorf("config: plugin %d (type %s): %w", i, p.Network.Type, err)
		}
	}
	if top["plugins"], err = json.Marshal(plugins); err != nil {
		return nil, err
	}
	out, err := json.Marshal(top)
	if err != nil {
		return nil, err
	}
	if _, err := catalog.ParseConfig(out); err != nil {
		return nil, fmt.Errorf("config with cni-args: %w", err)
	}
	return out, nil
}

// mergeArgsCNI returns the plugin config conf with add merged into its
// args.cni object (created if absent).
func mergeArgsCNI(conf []byte, add map[string]json.RawMessage) ([]byte, error) {
	plugin, err := jsonObject(conf)
	if err != nil {
		return nil, err
	}
	args, err := jsonObject(plugin["args"])
	if err != nil {
		return nil, fmt.Errorf("args: %w", err)
	}
	cni, err := jsonObject(args["cni"])
	if err != nil {
		return nil, fmt.Errorf("args.cni: %w", err)
	}
	maps.Copy(cni, add)
	if args["cni"], err = json.Marshal(cni); err != nil {
		return nil, err
	}
	if plugin["args"], err = json.Marshal(args); err != nil {
		return nil, err
	}
	return json.Marshal(plugin)
}

// jsonObject decodes a JSON object, keeping its values raw. Absent or null
// is an empty object; any other non-object is an error.
func jsonObject(data json.RawMessage) (map[string]json.RawMessage, error) {
	obj := map[string]json.RawMessage{}
	if len(data) == 0 || bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		return obj, nil
	}
	if err := json.Unmarshal(data, &obj); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return nil, fmt.Errorf("not a JSON object but %s", typeErr.Value)
		}
		return nil, err
	}
	return obj, nil
}

// cniArgsSet tells whether a request has cni-args: JSON null, as the
// decoder leaves it for a null value, is none, like an absent key.
func cniArgsSet(cniArgs json.RawMessage) bool {
	t := bytes.TrimSpace(cniArgs)
	return len(t) > 0 && !bytes.Equal(t, []byte("null"))
}

// sameCNIArgs tells whether a and b are the same cni-args: both unset, or
// the same JSON text but for insignificant whitespace (records keep raw
// messages compacted).
func sameCNIArgs(a, b json.RawMessage) bool {
	if !cniArgsSet(a) || !cniArgsSet(b) {
		return cniArgsSet(a) == cniArgsSet(b)
	}
	var ca, cb bytes.Buffer
	if json.Compact(&ca, a) != nil || json.Compact(&cb, b) != nil {
		return bytes.Equal(a, b)
	}
	return bytes.Equal(ca.Bytes(), cb.Bytes())
}
