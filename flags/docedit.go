package flags

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// overrideDoc is an Override as the overrides section spells it.
type overrideDoc struct {
	Disabled *bool       `yaml:"disabled,omitempty" json:"disabled,omitempty"`
	Percent  *percentDoc `yaml:"percent,omitempty" json:"percent,omitempty"`
}

type percentDoc struct {
	Variant string  `yaml:"variant" json:"variant"`
	Percent float64 `yaml:"percent" json:"percent"`
}

func docOf(o Override) overrideDoc {
	d := overrideDoc{Disabled: o.Disabled}
	if o.Percent != nil {
		d.Percent = &percentDoc{Variant: o.Percent.Variant, Percent: o.Percent.Percent}
	}
	return d
}

// EditOverride returns a document's data with the override of flag key
// replaced by what edit makes of it: edit receives the document's current
// override of key (the zero Override if none) and changes it; a zero
// result removes it. Everything else stays as written: a YAML document
// keeps its comments and layout (with two-space indentation), a JSON
// document is re-indented with its top-level keys sorted. It is how a
// run-time change made on one host becomes a new version of a fleet's
// document, with edit being the admin handler's (OverrideWriter) or a
// ramp's: read the document, EditOverride, store the result with
// compare-and-swap on the version read (on a conflict, read and edit
// again), and every host's DocumentSource applies it. Both the document
// given and the result must pass ValidateDocument; an error from edit is
// returned as is. name picks the syntax as Document.Name does.
func EditOverride(name string, data []byte, key string, edit func(*Override) error) ([]byte, error) {
	if name == "" {
		name = DefaultDocumentName
	}
	if key == "" {
		return nil, &LoadError{File: name, Field: "overrides", Err: errors.New("empty flag key")}
	}
	cfg, err := parseDocument(name, data)
	if err != nil {
		return nil, err
	}
	o := cfg.Overrides[key]
	if err := edit(&o); err != nil {
		return nil, err
	}
	var out []byte
	if strings.EqualFold(filepath.Ext(name), ".json") {
		out, err = editJSON(data, key, o)
	} else {
		out, err = editYAML(data, key, o)
	}
	if err != nil {
		return nil, &LoadError{File: name, Flag: key, Field: "overrides", Err: err}
	}
	if _, err := parseDocument(name, out); err != nil {
		return nil, err
	}
	return out, nil
}

func editJSON(data []byte, key string, o Override) ([]byte, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, err
	}
	var ovs map[string]json.RawMessage
	if raw, ok := top["overrides"]; ok {
		if err := json.Unmarshal(raw, &ovs); err != nil {
			return nil, err
		}
	}
	if o.IsZero() {
		delete(ovs, key)
	} else {
		v, err := json.Marshal(docOf(o))
		if err != nil {
			return nil, err
		}
		if ovs == nil {
			ovs = map[string]json.RawMessage{}
		}
		ovs[key] = v
	}
	if len(ovs) == 0 {
		delete(top, "overrides")
	} else {
		v, err := json.Marshal(ovs)
		if err != nil {
			return nil, err
		}
		top["overrides"] = v
	}
	out, err := json.MarshalIndent(top, "", "  ")
	return append(out, '\n'), err
}

func editYAML(data []byte, key string, o Override) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("the document is not a mapping")
	}
	root := doc.Content[0]
	ovs := valueOf(root, "overrides")
	if o.IsZero() {
		if ovs != nil {
			removeKey(ovs, key)
			if len(ovs.Content) == 0 {
				removeKey(root, "overrides")
			}
		}
	} else {
		var v yaml.Node
		if err := v.Encode(docOf(o)); err != nil {
			return nil, err
		}
		v.Style = yaml.FlowStyle
		if ovs == nil {
			ovs = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			root.Content = append(root.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "overrides"}, ovs)
		}
		if old := valueOf(ovs, key); old != nil {
			*old = v
		} else {
			ovs.Content = append(ovs.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, &v)
		}
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encoding the document: %w", err)
	}
	return b.Bytes(), nil
}

// valueOf returns the value of key in mapping m, or nil.
func valueOf(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func removeKey(m *yaml.Node, key string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return
		}
	}
}
