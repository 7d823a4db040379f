package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/batonhq/baton/flags"
)

// DefaultFlagVariant is the variant a FlagStore serves to the ramped
// percentage when FlagStoreOptions.Variant is empty.
const DefaultFlagVariant = "on"

// FlagStoreOptions configure NewFlagStore. Store is required.
type FlagStoreOptions struct {
	// Store receives the percentages and kill switches.
	Store *flags.Store
	// Variant is served to the ramped percentage of subjects, the rest
	// get the flag's default. Empty means DefaultFlagVariant.
	Variant string
	// StateFile keeps the ramp durable. flags.Store's run-time changes
	// live in memory and die with the process, so a flag ramped to 50%
	// by an old process would fall back to its file definition in the
	// process that takes over after an upgrade, or after a crash. With
	// StateFile set, every change is first written to this file
	// (atomically: temp file, fsync, rename, directory fsync), and
	// NewFlagStore applies the file's contents to the Store, so that every
	// process built on the same StateFile serves the ramp where it is.
	// Empty means in-memory only.
	StateFile string
}

// FlagStore drives ramp-flag steps with a *flags.Store: SetPercentage is
// Store.SetPercent(key, Variant, pct) with the kill switch off, and
// Disable is Store.SetDisabled(key, true). See FlagStoreOptions.StateFile
// for why and how it keeps them across upgrades and crashes. The choice
// of a file of its own, rather than editing the operator's flag files,
// leaves those files (and their comments) untouched; the cost is that a
// ramp overrides the file's definition of the flag's fallthrough until
// the state file is removed. The zero value is not usable: use
// NewFlagStore.
type FlagStore struct {
	o FlagStoreOptions

	mu    sync.Mutex // serializes changes and writes of the state file
	state map[string]flagRamp
}

// flagRamp is the durable state of one ramped flag.
type flagRamp struct {
	Variant  string  `json:"variant"`
	Percent  float64 `json:"percent"`
	Disabled bool    `json:"disabled,omitempty"`
}

// NewFlagStore returns a FlagStore and applies the ramps recorded in
// o.StateFile to o.Store. A ramp whose flag the Store does not define
// fails with an error naming the flag and the file.
func NewFlagStore(o FlagStoreOptions) (*FlagStore, error) {
	if o.Store == nil {
		return nil, errors.New("rollout: FlagStoreOptions.Store is required")
	}
	if o.Variant == "" {
		o.Variant = DefaultFlagVariant
	}
	f := &FlagStore{o: o, state: map[string]flagRamp{}}
	if o.StateFile == "" {
		return f, nil
	}
	data, err := os.ReadFile(o.StateFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return f, nil
	case err != nil:
		return nil, fmt.Errorf("rollout: flag state: %w", err)
	}
	if err := json.Unmarshal(data, &f.state); err != nil {
		return nil, fmt.Errorf("rollout: flag state file %s is not valid JSON: %w", o.StateFile, err)
	}
	keys := make([]string, 0, len(f.state))
	for k := range f.state {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := f.apply(k, f.state[k]); err != nil {
			return nil, fmt.Errorf("rollout: applying flag state file %s: %w", o.StateFile, err)
		}
	}
	return f, nil
}

func (f *FlagStore) apply(key string, r flagRamp) error {
	if err := f.o.Store.SetPercent(key, r.Variant, r.Percent); err != nil {
		return err
	}
	return f.o.Store.SetDisabled(key, r.Disabled)
}

// change persists the new ramp of key, then applies it. Persisting first
// means a crash in between is repaired by the next NewFlagStore, and the
// step that was running is run again anyway.
func (f *FlagStore) change(key string, edit func(*flagRamp)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.state[key]
	if !ok {
		r = flagRamp{Variant: f.o.Variant}
	}
	edit(&r)
	next := make(map[string]flagRamp, len(f.state)+1)
	for k, v := range f.state {
		next[k] = v
	}
	next[key] = r
	if f.o.StateFile != "" {
		// Refuse a change the Store would refuse before writing it.
		if f.o.Store.Status(key).Key == "" {
			return fmt.Errorf("rollout: %w: %q", flags.ErrFlagNotFound, key)
		}
		if err := writeFileAtomic(f.o.StateFile, next); err != nil {
			return err
		}
	}
	if err := f.apply(key, r); err != nil {
		return err
	}
	f.state = next
	return nil
}

// SetPercentage serves Variant to pct percent of subjects and turns the
// kill switch off.
func (f *FlagStore) SetPercentage(ctx context.Context, key string, pct float64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !(pct >= 0 && pct <= 100) {
		return fmt.Errorf("rollout: flag %q: percentage %v is outside 0..100", key, pct)
	}
	return f.change(key, func(r *flagRamp) { r.Percent, r.Disabled = pct, false })
}

// Disable turns the flag off (its off variant for everyone).
func (f *FlagStore) Disable(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return f.change(key, func(r *flagRamp) { r.Disabled = true })
}

// writeFileAtomic stores v as JSON at path the way the file store writes
// its documents (writeAtomic): a crash leaves the old or the new content.
func writeFileAtomic(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := writeAtomic(filepath.Dir(path), path, data); err != nil {
		return fmt.Errorf("rollout: state file %s: %w", path, err)
	}
	return nil
}

var _ FlagRamper = (*FlagStore)(nil)
