package flags

import (
	"encoding/json"
	"errors"
	"strings"

	"gopkg.in/yaml.v3"
)

// jsonNode builds the yaml.Node tree of a JSON document, keeping key
// order, duplicate keys and lines for the walker. It scans the bytes
// itself: data has already been validated by encoding/json, and both
// encoding/json's Token API and the YAML parser are several times slower on
// large files.
func jsonNode(data []byte) (*yaml.Node, error) {
	p := &jsonScan{data: data, line: 1}
	root, err := p.value(0)
	if err != nil {
		return nil, err
	}
	return &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{root}}, nil
}

type jsonScan struct {
	data []byte
	i    int
	line int
}

// skip passes whitespace and the separators ':' and ',', which valid JSON
// only has where the tree's shape already says.
func (p *jsonScan) skip() {
	for p.i < len(p.data) {
		switch p.data[p.i] {
		case '\n':
			p.line++
		case ' ', '\t', '\r', ':', ',':
		default:
			return
		}
		p.i++
	}
}

func (p *jsonScan) value(depth int) (*yaml.Node, error) {
	p.skip()
	if p.i >= len(p.data) {
		return nil, errors.New("unexpected end of JSON")
	}
	if depth > 10000 {
		return nil, errors.New("JSON nested too deeply")
	}
	line := p.line
	switch c := p.data[p.i]; c {
	case '{', '[':
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: line}
		end := byte('}')
		if c == '[' {
			n.Kind, n.Tag, end = yaml.SequenceNode, "!!seq", ']'
		}
		p.i++
		for {
			p.skip()
			if p.i >= len(p.data) {
				return nil, errors.New("unexpected end of JSON")
			}
			if p.data[p.i] == end {
				p.i++
				return n, nil
			}
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, v)
		}
	case '"':
		start := p.i
		p.i++
		escaped := false
		for p.i < len(p.data) && p.data[p.i] != '"' {
			if p.data[p.i] == '\\' {
				escaped = true
				p.i++
			}
			p.i++
		}
		p.i++
		if p.i > len(p.data) {
			return nil, errors.New("unterminated JSON string")
		}
		raw := p.data[start:p.i]
		var str string
		if escaped {
			if err := json.Unmarshal(raw, &str); err != nil {
				return nil, err
			}
		} else {
			str = string(raw[1 : len(raw)-1])
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: str, Line: line}, nil
	default:
		start := p.i
		for p.i < len(p.data) && !strings.ContainsRune(" \t\r\n,:]}", rune(p.data[p.i])) {
			p.i++
		}
		lit := string(p.data[start:p.i])
		tag := "!!int"
		switch {
		case lit == "true" || lit == "false":
			tag = "!!bool"
		case lit == "null":
			tag = "!!null"
		case strings.ContainsAny(lit, ".eE"):
			tag = "!!float"
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: lit, Line: line}, nil
	}
}
