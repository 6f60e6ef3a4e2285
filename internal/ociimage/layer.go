package ociimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"
)

// ErrInvalidFile is wrapped by every error about a File of an image.
var ErrInvalidFile = errors.New("invalid file")

// epoch is the modification time of every tar entry, so that the bytes
// depend only on the image's content.
var epoch = time.Unix(0, 0)

// File is one entry of an image's filesystem.
//
// Path is relative to the image root and must be clean (no leading slash,
// no "." or ".." elements). The entry is a symlink to Linkname when
// Linkname is set, a directory when Mode.IsDir(), and a regular file
// holding Data otherwise. Only Mode's permission, setuid, setgid and
// sticky bits are kept. Parent directories need not be listed: missing
// ones are created with mode 0755.
type File struct {
	Path     string
	Mode     fs.FileMode
	Data     []byte
	Linkname string
}

// checkFile rejects what would escape the root, be ambiguous in a tar, or
// be silently dropped.
func checkFile(f File) error {
	p := f.Path
	switch {
	case p == "" || p == ".":
		return fmt.Errorf("%w %q: empty path", ErrInvalidFile, p)
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("%w %q: path must be relative", ErrInvalidFile, p)
	case p == ".." || strings.HasPrefix(p, "../") || strings.HasSuffix(p, "/..") || strings.Contains(p, "/../"):
		return fmt.Errorf("%w %q: path must not contain \"..\"", ErrInvalidFile, p)
	case path.Clean(p) != p:
		return fmt.Errorf("%w %q: path is not clean", ErrInvalidFile, p)
	}
	const kept = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky
	switch {
	case f.Mode&^(kept|fs.ModeDir|fs.ModeSymlink) != 0:
		return fmt.Errorf("%w %q: unsupported mode %v", ErrInvalidFile, p, f.Mode)
	case f.Linkname != "" && f.Mode.IsDir():
		return fmt.Errorf("%w %q: symlink with directory mode", ErrInvalidFile, p)
	case f.Linkname == "" && f.Mode&fs.ModeSymlink != 0:
		return fmt.Errorf("%w %q: symlink without target", ErrInvalidFile, p)
	case len(f.Data) > 0 && (f.Linkname != "" || f.Mode.IsDir()):
		return fmt.Errorf("%w %q: data on a symlink or directory", ErrInvalidFile, p)
	}
	return nil
}

// tarMode converts the bits that checkFile allows; fs.FileMode puts them
// elsewhere than the Unix mode a tar header carries.
func tarMode(m fs.FileMode) int64 {
	mode := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}

// layerEntries validates files and returns them plus their implied parent
// directories, sorted by path. Sorting makes the layer independent of the
// input order and puts every parent before its children, since a parent's
// path is a prefix of theirs.
func layerEntries(files []File) ([]File, error) {
	byPath := make(map[string]File, len(files))
	for _, f := range files {
		if err := checkFile(f); err != nil {
			return nil, err
		}
		if _, dup := byPath[f.Path]; dup {
			return nil, fmt.Errorf("%w %q: duplicate path", ErrInvalidFile, f.Path)
		}
		byPath[f.Path] = f
	}
	for _, f := range files {
		for dir := path.Dir(f.Path); dir != "."; dir = path.Dir(dir) {
			parent, ok := byPath[dir]
			if !ok {
				byPath[dir] = File{Path: dir, Mode: fs.ModeDir | 0o755}
				continue
			}
			if !parent.Mode.IsDir() || parent.Linkname != "" {
				return nil, fmt.Errorf("%w %q: parent %q is not a directory", ErrInvalidFile, f.Path, dir)
			}
		}
	}
	entries := make([]File, 0, len(byPath))
	for _, f := range byPath {
		entries = append(entries, f)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Path < entries[j].Path })
	return entries, nil
}

// buildLayer returns the uncompressed layer tar and its gzip compression.
// The image config names the former (diff_id), the manifest the latter.
func buildLayer(files []File) (uncompressed, compressed []byte, err error) {
	entries, err := layerEntries(files)
	if err != nil {
		return nil, nil, err
	}
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, f := range entries {
		hdr := &tar.Header{Name: f.Path, Mode: tarMode(f.Mode), ModTime: epoch}
		switch {
		case f.Linkname != "":
			hdr.Typeflag, hdr.Linkname, hdr.Mode = tar.TypeSymlink, f.Linkname, 0o777
		case f.Mode.IsDir():
			hdr.Typeflag, hdr.Name = tar.TypeDir, f.Path+"/"
		default:
			hdr.Typeflag, hdr.Size = tar.TypeReg, int64(len(f.Data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, nil, fmt.Errorf("writing layer entry %q: %w", f.Path, err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := tw.Write(f.Data); err != nil {
				return nil, nil, fmt.Errorf("writing layer entry %q: %w", f.Path, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, nil, fmt.Errorf("closing layer: %w", err)
	}

	// A zero gzip.Header has no name and no mtime, so the compressed
	// bytes depend only on the tar.
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return nil, nil, fmt.Errorf("compressing layer: %w", err)
	}
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, nil, fmt.Errorf("compressing layer: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, nil, fmt.Errorf("compressing layer: %w", err)
	}
	return raw.Bytes(), gz.Bytes(), nil
}
