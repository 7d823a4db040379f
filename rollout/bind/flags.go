package bind

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"sync"

	"github.com/batonhq/baton/flags"
	"github.com/batonhq/baton/internal/atomicfile"
	"github.com/batonhq/baton/rollout"
)

// DefaultFlagVariant is the variant FlagRamps serves to the ramped
// percentage when FlagRampsOptions.Variant is empty.
const DefaultFlagVariant = "on"

// MaxFlagStateFile bounds the state file NewFlagRamps reads.
const MaxFlagStateFile = 1 << 20

// FlagRampsOptions configure NewFlagRamps. Store is required.
type FlagRampsOptions struct {
	// Store receives the percentages and kill switches.
	Store *flags.Store
	// Variant is served to the ramped percentage of subjects, the rest
	// get the flag's default. Empty means DefaultFlagVariant.
	Variant string
	// StateFile keeps the ramps durable. flags.Store's run-time changes
	// live in memory and die with the process, so a flag ramped to 50%
	// by an old process would fall back to its file definition in the
	// process that takes over after an upgrade, or after a crash. With
	// StateFile set, every change is first written to this file
	// (atomically: temp file, fsync, rename, directory fsync), and
	// NewFlagRamps applies the file's contents to the Store, so that
	// every process built on the same StateFile serves the ramp where it
	// is. Empty means in memory only.
	StateFile string
}

// FlagRamps drives ramp-flag steps with a *flags.Store: SetPercent is
// Store.SetPercent(key, Variant, percent) with the kill switch off, and
// Disable is Store.SetDisabled(key, true). See FlagRampsOptions.StateFile
// for why and how it keeps them across upgrades and crashes. The choice
// of a file of its own, rather than editing the operator's flag files,
// leaves those files (and their comments) untouched; the cost is that a
// ramp overrides the file's definition of the flag's fallthrough until
// the state file is removed. The zero value is not usable: use
// NewFlagRamps.
type FlagRamps struct {
	o FlagRampsOptions

	mu    sync.Mutex // serializes changes and writes of the state file
	state map[string]flagRamp
}

// flagRamp is the durable state of one ramped flag.
type flagRamp struct {
	Variant  string  `json:"variant"`
	Percent  float64 `json:"percent"`
	Disabled bool    `json:"disabled,omitempty"`
}

// NewFlagRamps returns a FlagRamps and applies the ramps recorded in
// o.StateFile to o.Store. A ramp whose flag the Store does not define
// fails with an error naming the flag and the file.
func NewFlagRamps(o FlagRampsOptions) (*FlagRamps, error) {
	if o.Store == nil {
		return nil, errors.New("bind: FlagRampsOptions.Store is required")
	}
	if o.Variant == "" {
		o.Variant = DefaultFlagVariant
	}
	f := &FlagRamps{o: o, state: map[string]flagRamp{}}
	if o.StateFile == "" {
		return f, nil
	}
	data, err := readBounded(o.StateFile, MaxFlagStateFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return f, nil
	case err != nil:
		return nil, fmt.Errorf("bind: flag state: %w", err)
	}
	if err := json.Unmarshal(data, &f.state); err != nil {
		return nil, fmt.Errorf("bind: flag state file %s is not valid JSON: %w", o.StateFile, err)
	}
	for _, k := range slices.Sorted(maps.Keys(f.state)) {
		if err := f.apply(k, f.state[k]); err != nil {
			return nil, fmt.Errorf("bind: applying flag state file %s: %w", o.StateFile, err)
		}
	}
	return f, nil
}

// readBounded reads path, refusing a file larger than limit.
func readBounded(path string, limit int64) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s is %d bytes, more than %d", path, fi.Size(), limit)
	}
	b := make([]byte, fi.Size())
	_, err = fh.ReadAt(b, 0)
	return b, err
}

func (f *FlagRamps) apply(key string, r flagRamp) error {
	if err := f.o.Store.SetPercent(key, r.Variant, r.Percent); err != nil {
		return err
	}
	return f.o.Store.SetDisabled(key, r.Disabled)
}

// change persists the new ramp of key, then applies it. Persisting first
// means a crash in between is repaired by the next NewFlagRamps, and the
// step that was running is run again anyway.
func (f *FlagRamps) change(key string, edit func(*flagRamp)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.state[key]
	if !ok {
		r = flagRamp{Variant: f.o.Variant}
	}
	edit(&r)
	next := maps.Clone(f.state)
	next[key] = r
	if f.o.StateFile != "" {
		// Refuse a change the Store would refuse before writing it.
		if f.o.Store.Status(key).Key == "" {
			return fmt.Errorf("bind: %w: %q", flags.ErrFlagNotFound, key)
		}
		data, err := json.MarshalIndent(next, "", "  ")
		if err != nil {
			return err
		}
		if err := atomicfile.WriteFile(f.o.StateFile, data); err != nil {
			return fmt.Errorf("bind: flag state file %s: %w", f.o.StateFile, err)
		}
	}
	if err := f.apply(key, r); err != nil {
		return err
	}
	f.state = next
	return nil
}

// SetPercent serves Variant to percent of subjects and turns the kill
// switch off.
func (f *FlagRamps) SetPercent(ctx context.Context, key string, percent float64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !(percent >= 0 && percent <= 100) {
		return fmt.Errorf("bind: flag %q: percentage %v is outside 0..100", key, percent)
	}
	return f.change(key, func(r *flagRamp) { r.Percent, r.Disabled = percent, false })
}

// Disable turns the flag off (its off variant for everyone).
func (f *FlagRamps) Disable(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return f.change(key, func(r *flagRamp) { r.Disabled = true })
}

var _ rollout.FlagRamper = (*FlagRamps)(nil)
