package atomicfile

// syncDir is a no-op: Windows cannot open a directory for fsync; NTFS
// journals the rename itself.
func syncDir(string) error { return nil }
