package flags

import "strings"

// semver is a parsed semantic version. pre keeps the pre-release text as a
// substring of the input, so parsing an attribute value does not allocate.
type semver struct {
	major, minor, patch uint64
	pre                 string
}

// parseSemver accepts "1", "1.2", "1.2.3", an optional leading "v", an
// optional "-pre.release" and an ignored "+build".
func parseSemver(s string) (semver, bool) {
	var v semver
	s = strings.TrimPrefix(s, "v")
	if i := strings.IndexByte(s, '+'); i >= 0 {
		s = s[:i]
	}
	if i := strings.IndexByte(s, '-'); i >= 0 {
		v.pre = s[i+1:]
		s = s[:i]
		if v.pre == "" {
			return v, false
		}
	}
	var parts [3]uint64
	n := 0
	for {
		if n == 3 {
			return v, false
		}
		i := strings.IndexByte(s, '.')
		part := s
		if i >= 0 {
			part = s[:i]
		}
		x, ok := parseUint(part)
		if !ok {
			return v, false
		}
		parts[n] = x
		n++
		if i < 0 {
			break
		}
		s = s[i+1:]
	}
	v.major, v.minor, v.patch = parts[0], parts[1], parts[2]
	return v, true
}

func parseUint(s string) (uint64, bool) {
	if s == "" || len(s) > 19 {
		return 0, false
	}
	var x uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		x = x*10 + uint64(c-'0')
	}
	return x, true
}

// compareSemver orders versions as semver.org section 11 does: a version
// with a pre-release sorts before the same version without one, and
// pre-release identifiers compare numerically when both are numeric.
func compareSemver(a, b semver) int {
	switch {
	case a.major != b.major:
		return cmpU(a.major, b.major)
	case a.minor != b.minor:
		return cmpU(a.minor, b.minor)
	case a.patch != b.patch:
		return cmpU(a.patch, b.patch)
	}
	switch {
	case a.pre == b.pre:
		return 0
	case a.pre == "":
		return 1
	case b.pre == "":
		return -1
	}
	x, y := a.pre, b.pre
	for x != "" && y != "" {
		var px, py string
		px, x, _ = strings.Cut(x, ".")
		py, y, _ = strings.Cut(y, ".")
		nx, okx := parseUint(px)
		ny, oky := parseUint(py)
		switch {
		case okx && oky:
			if nx != ny {
				return cmpU(nx, ny)
			}
		case okx:
			return -1
		case oky:
			return 1
		default:
			if c := strings.Compare(px, py); c != 0 {
				return c
			}
		}
	}
	switch {
	case x == "" && y == "":
		return 0
	case x == "":
		return -1
	default:
		return 1
	}
}

func cmpU(a, b uint64) int {
	if a < b {
		return -1
	}
	return 1
}
