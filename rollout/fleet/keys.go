package fleet

import (
	"errors"
	"fmt"
	"strings"
)

// MaxKeyLen bounds a key, MaxValueSize a document and MaxOps a Txn; the
// engines refuse more. etcd's default request limit (1.5 MiB) is above
// MaxValueSize.
const (
	MaxKeyLen    = 512
	MaxValueSize = 1 << 20
	MaxOps       = 64
)

// ValidKey checks a key or election name: segments of letters, digits,
// '.', '_' and '-' separated by single '/', no '.' or '..' segment, at most
// MaxKeyLen bytes. Keys never reach an SQL string or a path unchecked.
func ValidKey(key string) error {
	if err := validPath(key); err != nil {
		return fmt.Errorf("%w %q: %s", ErrInvalidKey, key, err)
	}
	return nil
}

// ValidPrefix checks a watch or list prefix: a valid key, optionally
// ending with '/'.
func ValidPrefix(prefix string) error {
	if err := validPath(strings.TrimSuffix(prefix, "/")); err != nil {
		return fmt.Errorf("%w prefix %q: %s", ErrInvalidKey, prefix, err)
	}
	return nil
}

func validPath(p string) error {
	if p == "" {
		return errors.New("empty")
	}
	if len(p) > MaxKeyLen {
		return fmt.Errorf("longer than %d bytes", MaxKeyLen)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" {
			return errors.New("empty segment (leading, trailing or double '/')")
		}
		if seg == "." || seg == ".." {
			return fmt.Errorf("segment %q", seg)
		}
		for _, c := range seg {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
				return fmt.Errorf("character %q (use letters, digits, '.', '_', '-' and '/')", c)
			}
		}
	}
	return nil
}

// ValidTxn checks a transaction's shape before an engine sends it: at
// least one op, at most MaxOps, valid keys, each at most once, values at
// most MaxValueSize, Prev at least Any.
func ValidTxn(t Txn) error {
	if len(t.Ops) == 0 {
		return errors.New("fleet: empty transaction")
	}
	if len(t.Ops) > MaxOps {
		return fmt.Errorf("fleet: transaction of %d ops (at most %d)", len(t.Ops), MaxOps)
	}
	seen := make(map[string]bool, len(t.Ops))
	for i, op := range t.Ops {
		if err := ValidKey(op.Key); err != nil {
			return fmt.Errorf("fleet: op %d: %w", i, err)
		}
		if seen[op.Key] {
			return fmt.Errorf("fleet: op %d: key %s appears twice in one transaction", i, op.Key)
		}
		seen[op.Key] = true
		if len(op.Value) > MaxValueSize {
			return fmt.Errorf("fleet: op %d: document %s of %d bytes (at most %d)", i, op.Key, len(op.Value), MaxValueSize)
		}
		if op.Prev < Any {
			return fmt.Errorf("fleet: op %d: Prev %d on %s (want Any, 0 or a revision)", i, op.Prev, op.Key)
		}
	}
	return nil
}
