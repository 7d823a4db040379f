package migrate

import (
	"bytes"
	"fmt"
	"os"

	"gopkg.in/yaml.v3"
)

var opFactories = map[string]func() Operation{
	"create_table":    func() Operation { return &CreateTable{} },
	"add_column":      func() Operation { return &AddColumn{} },
	"create_index":    func() Operation { return &CreateIndex{} },
	"transform":       func() Operation { return &Transform{} },
	"rename_column":   func() Operation { return &RenameColumn{} },
	"change_type":     func() Operation { return &ChangeType{} },
	"set_not_null":    func() Operation { return &SetNotNull{} },
	"add_foreign_key": func() Operation { return &AddForeignKey{} },
	"drop_column":     func() Operation { return &DropColumn{} },
	"drop_table":      func() Operation { return &DropTable{} },
	"sql":             func() Operation { return &RawSQL{} },
}

// LoadFile reads a migration from a YAML or JSON file (JSON is read as
// YAML). Errors name the file, the operation index and the line.
func LoadFile(path string) (*Migration, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("migrate: read migration file: %w", err)
	}
	m, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Parse decodes a migration from YAML or JSON:
//
//	name: split_name
//	version: "2.0.0"
//	operations:
//	  - add_column: {table: users, column: {name: email, type: text}}
//	  - rename_column: {table: users, from: login, to: username}
//
// Unknown keys are errors. Parse checks the shape only; Validate checks the
// content for a dialect.
func Parse(data []byte) (*Migration, error) {
	var doc struct {
		Name       string      `yaml:"name"`
		Version    string      `yaml:"version"`
		Operations []yaml.Node `yaml:"operations"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		return nil, &ValidationError{Reason: "decode: " + err.Error()}
	}
	m := &Migration{Name: doc.Name, Version: doc.Version}
	for i, n := range doc.Operations {
		path := fmt.Sprintf("operations[%d] (line %d)", i, n.Line)
		if n.Kind != yaml.MappingNode || len(n.Content) != 2 {
			return nil, &ValidationError{Migration: m.Name, Path: path, Reason: "an operation is a mapping with exactly one key, its kind (e.g. add_column)"}
		}
		kind := n.Content[0].Value
		mk, ok := opFactories[kind]
		if !ok {
			return nil, &ValidationError{Migration: m.Name, Path: path, Reason: fmt.Sprintf("unknown operation kind %q", kind)}
		}
		op := mk()
		// Re-encode the body so that KnownFields applies to it too.
		body, err := yaml.Marshal(n.Content[1])
		if err != nil {
			return nil, &ValidationError{Migration: m.Name, Path: path, Reason: err.Error()}
		}
		od := yaml.NewDecoder(bytes.NewReader(body))
		od.KnownFields(true)
		if err := od.Decode(op); err != nil {
			return nil, &ValidationError{Migration: m.Name, Path: path + "." + kind, Reason: err.Error()}
		}
		m.Operations = append(m.Operations, deref(op))
	}
	return m, nil
}

func deref(op Operation) Operation {
	switch o := op.(type) {
	case *CreateTable:
		return *o
	case *AddColumn:
		return *o
	case *CreateIndex:
		return *o
	case *Transform:
		return *o
	case *RenameColumn:
		return *o
	case *ChangeType:
		return *o
	case *SetNotNull:
		return *o
	case *AddForeignKey:
		return *o
	case *DropColumn:
		return *o
	case *DropTable:
		return *o
	case *RawSQL:
		return *o
	}
	return op
}
