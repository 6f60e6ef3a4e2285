package ociimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"runtime"
	"strings"
	"testing"
)

// archive is a WriteArchive output read back.
type archive struct {
	names []string          // entry names in order
	files map[string][]byte // regular files by name
}

func readArchive(t *testing.T, b []byte) archive {
	t.Helper()
	a := archive{files: map[string][]byte{}}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading archive: %v", err)
		}
		a.names = append(a.names, hdr.Name)
		if hdr.Typeflag == tar.TypeReg {
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatalf("reading %s: %v", hdr.Name, err)
			}
			a.files[hdr.Name] = data
		}
	}
	return a
}

func (a archive) blob(t *testing.T, digest string) []byte {
	t.Helper()
	name := "blobs/sha256/" + strings.TrimPrefix(digest, "sha256:")
	b, ok := a.files[name]
	if !ok {
		t.Fatalf("blob %s missing", digest)
	}
	return b
}

func decode(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
}

func sha(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func testImage() Image {
	return Image{
		Ref: "localhost/pod-networks/test:v1",
		Files: []File{
			{Path: "usr/bin/tool", Mode: 0o755, Data: []byte("#!/bin/sh\n")},
			{Path: "bin/sh", Linkname: "/bin/busybox"},
			{Path: "tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
			{Path: "etc/passwd", Mode: 0o644, Data: []byte("root:x:0:0::/:/bin/sh\n")},
			{Path: "bin/busybox", Mode: 0o755 | fs.ModeSetuid, Data: []byte("ELF")},
		},
		Config: Config{Cmd: []string{"/bin/sh"}, Env: []string{"PATH=/bin"}, WorkingDir: "/tmp"},
	}
}

func write(t *testing.T, img Image) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	digest, err := WriteArchive(&buf, img)
	if err != nil {
		t.Fatalf("WriteArchive: %v", err)
	}
	return buf.Bytes(), digest
}

func TestWriteArchiveLayout(t *testing.T) {
	b, digest := write(t, testImage())
	a := readArchive(t, b)

	if got := string(a.files["oci-layout"]); got != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout = %q", got)
	}
	for name, data := range a.files {
		if hexDigest, ok := strings.CutPrefix(name, "blobs/sha256/"); ok && hexDigest != sha(data) {
			t.Errorf("blob %s has sha256 %s", name, sha(data))
		}
	}

	var idx index
	decode(t, a.files["index.json"], &idx)
	if idx.SchemaVersion != 2 || idx.MediaType != mediaTypeIndex || len(idx.Manifests) != 1 {
		t.Fatalf("index = %+v", idx)
	}
	md := idx.Manifests[0]
	if md.Digest != digest {
		t.Errorf("index manifest digest %s, WriteArchive returned %s", md.Digest, digest)
	}
	man := a.blob(t, md.Digest)
	if md.Size != int64(len(man)) || md.MediaType != mediaTypeManifest {
		t.Errorf("manifest descriptor = %+v, blob size %d", md, len(man))
	}
	if md.Platform == nil || *md.Platform != (platform{Architecture: runtime.GOARCH, OS: "linux"}) {
		t.Errorf("platform = %+v", md.Platform)
	}
	if got := md.Annotations[annotationContainerdName]; got != "localhost/pod-networks/test:v1" {
		t.Errorf("%s = %q", annotationContainerdName, got)
	}
	if got := md.Annotations[annotationRefName]; got != "v1" {
		t.Errorf("%s = %q", annotationRefName, got)
	}

	var m manifest
	decode(t, man, &m)
	if m.SchemaVersion != 2 || m.MediaType != mediaTypeManifest || m.Config.MediaType != mediaTypeConfig ||
		len(m.Layers) != 1 || m.Layers[0].MediaType != mediaTypeLayer {
		t.Fatalf("manifest = %s", man)
	}
	configBlob := a.blob(t, m.Config.Digest)
	layerGz := a.blob(t, m.Layers[0].Digest)
	if m.Config.Size != int64(len(configBlob)) || m.Layers[0].Size != int64(len(layerGz)) {
		t.Errorf("manifest sizes do not match blobs: %s", man)
	}

	zr, err := gzip.NewReader(bytes.NewReader(layerGz))
	if err != nil {
		t.Fatal(err)
	}
	if zr.Name != "" || !zr.ModTime.IsZero() {
		t.Errorf("gzip header name %q mtime %v, want none", zr.Name, zr.ModTime)
	}
	layer, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}

	var cfg imageConfig
	decode(t, configBlob, &cfg)
	if cfg.Architecture != runtime.GOARCH || cfg.OS != "linux" || cfg.RootFS.Type != "layers" {
		t.Errorf("config = %s", configBlob)
	}
	if len(cfg.RootFS.DiffIDs) != 1 || cfg.RootFS.DiffIDs[0] != "sha256:"+sha(layer) {
		t.Errorf("diff_ids = %v, want [sha256:%s]", cfg.RootFS.DiffIDs, sha(layer))
	}
	want := testImage().Config
	if strings.Join(cfg.Config.Cmd, " ") != "/bin/sh" || strings.Join(cfg.Config.Env, " ") != "PATH=/bin" ||
		cfg.Config.WorkingDir != want.WorkingDir || cfg.Config.Entrypoint != nil {
		t.Errorf("config.config = %+v, want %+v", cfg.Config, want)
	}
}

func TestLayerContents(t *testing.T) {
	layer, _, err := buildLayer(testImage().Files)
	if err != nil {
		t.Fatal(err)
	}
	type entry struct {
		typ      byte
		mode     int64
		linkname string
		data     string
	}
	want := []struct {
		name string
		entry
	}{
		{"bin/", entry{tar.TypeDir, 0o755, "", ""}},
		{"bin/busybox", entry{tar.TypeReg, 0o4755, "", "ELF"}},
		{"bin/sh", entry{tar.TypeSymlink, 0o777, "/bin/busybox", ""}},
		{"etc/", entry{tar.TypeDir, 0o755, "", ""}},
		{"etc/passwd", entry{tar.TypeReg, 0o644, "", "root:x:0:0::/:/bin/sh\n"}},
		{"tmp/", entry{tar.TypeDir, 0o1777, "", ""}},
		{"usr/", entry{tar.TypeDir, 0o755, "", ""}},
		{"usr/bin/", entry{tar.TypeDir, 0o755, "", ""}},
		{"usr/bin/tool", entry{tar.TypeReg, 0o755, "", "#!/bin/sh\n"}},
	}
	tr := tar.NewReader(bytes.NewReader(layer))
	seen := map[string]bool{}
	for i := 0; ; i++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			if i != len(want) {
				t.Errorf("layer has %d entries, want %d", i, len(want))
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		got := entry{hdr.Typeflag, hdr.Mode, hdr.Linkname, string(data)}
		if i >= len(want) || hdr.Name != want[i].name || got != want[i].entry {
			t.Errorf("entry %d = %s %+v", i, hdr.Name, got)
		}
		if hdr.Uid != 0 || hdr.Gid != 0 || hdr.ModTime.Unix() != 0 {
			t.Errorf("%s: uid %d gid %d mtime %v, want 0 0 epoch", hdr.Name, hdr.Uid, hdr.Gid, hdr.ModTime)
		}
		name := strings.TrimSuffix(hdr.Name, "/")
		for dir := name; strings.Contains(dir, "/"); {
			dir = dir[:strings.LastIndex(dir, "/")]
			if !seen[dir] {
				t.Errorf("%s comes before its parent %s", hdr.Name, dir)
			}
		}
		seen[name] = true
	}
}

func TestWriteArchiveDeterministic(t *testing.T) {
	img := testImage()
	first, d1 := write(t, img)
	// Input order must not matter either.
	reversed := img
	reversed.Files = nil
	for i := len(img.Files) - 1; i >= 0; i-- {
		reversed.Files = append(reversed.Files, img.Files[i])
	}
	for _, again := range []Image{img, reversed} {
		b, d := write(t, again)
		if !bytes.Equal(first, b) || d != d1 {
			t.Errorf("rewrite differs: digest %s vs %s", d, d1)
		}
	}
}

func TestWriteArchiveInvalidRef(t *testing.T) {
	for _, ref := range []string{
		"",
		"pause",
		"pause:v1",
		"pod-networks/pause:v1",
		"localhost/pod-networks/pause",
		"localhost:5000/pause",
		"localhost/Pause:v1",
		"localhost/pause:",
		"localhost/pause:v1@sha256:0123",
		"localhost//pause:v1",
	} {
		img := testImage()
		img.Ref = ref
		var buf bytes.Buffer
		_, err := WriteArchive(&buf, img)
		if !errors.Is(err, ErrInvalidReference) || !strings.Contains(err.Error(), `"`+ref+`"`) {
			t.Errorf("ref %q: error %v, want ErrInvalidReference naming it", ref, err)
		}
		if buf.Len() != 0 {
			t.Errorf("ref %q: wrote %d bytes despite error", ref, buf.Len())
		}
	}
	for _, ref := range []string{"localhost/pod-networks/pause:v1", "localhost:5000/a/b_c:1.0-x", "registry.k8s.io/pause:3.10"} {
		if _, err := splitReference(ref); err != nil {
			t.Errorf("ref %q: %v", ref, err)
		}
	}
}

func TestWriteArchiveInvalidFiles(t *testing.T) {
	for _, tc := range []struct {
		bad   string
		files []File
	}{
		{"/etc/passwd", []File{{Path: "/etc/passwd"}}},
		{"../etc", []File{{Path: "../etc"}}},
		{"a/../../b", []File{{Path: "a/../../b"}}},
		{"a/./b", []File{{Path: "a/./b"}}},
		{"a/", []File{{Path: "a/"}}},
		{"", []File{{Path: ""}}},
		{"bin/sh", []File{{Path: "bin/sh"}, {Path: "bin/sh", Linkname: "busybox"}}},
		{"a/b", []File{{Path: "a", Data: []byte("x")}, {Path: "a/b"}}},
		{"dev/null", []File{{Path: "dev/null", Mode: fs.ModeDevice | 0o666}}},
		{"d", []File{{Path: "d", Mode: fs.ModeDir, Data: []byte("x")}}},
		{"l", []File{{Path: "l", Mode: fs.ModeSymlink}}},
	} {
		img := testImage()
		img.Files = tc.files
		_, err := WriteArchive(io.Discard, img)
		if !errors.Is(err, ErrInvalidFile) || !strings.Contains(err.Error(), `"`+tc.bad+`"`) {
			t.Errorf("files %+v: error %v, want ErrInvalidFile naming %q", tc.files, err, tc.bad)
		}
	}
}

func TestImages(t *testing.T) {
	pause := PauseImage("localhost/pod-networks/pause:v1", []byte("ELF"))
	if len(pause.Files) != 1 || pause.Files[0].Path != "pause" || pause.Config.Entrypoint[0] != "/pause" {
		t.Errorf("PauseImage = %+v", pause)
	}
	toolbox := ToolboxImage("localhost/pod-networks/toolbox:v1", nil)
	if toolbox.Config.Cmd[0] != "/bin/sh" || toolbox.Config.Env[0] != "PATH="+toolboxPath {
		t.Errorf("ToolboxImage = %+v", toolbox)
	}
	if _, err := WriteArchive(io.Discard, pause); err != nil {
		t.Error(err)
	}
}

func TestBusyboxFiles(t *testing.T) {
	const busybox = "/bin/busybox"
	if _, err := os.Stat(busybox); err != nil {
		t.Skipf("no busybox: %v", err)
	}
	files, err := BusyboxFiles(busybox)
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]File{}
	for _, f := range files {
		byPath[f.Path] = f
	}
	if f := byPath["bin/busybox"]; f.Linkname != "" || f.Mode != 0o755 || len(f.Data) == 0 {
		t.Errorf("bin/busybox = mode %v link %q, %d bytes", f.Mode, f.Linkname, len(f.Data))
	}
	for _, applet := range []string{"bin/sh", "sbin/ip"} {
		if f := byPath[applet]; f.Linkname != "/bin/busybox" {
			t.Errorf("%s links to %q, want /bin/busybox", applet, f.Linkname)
		}
	}
	if f := byPath["tmp"]; f.Mode != fs.ModeDir|fs.ModeSticky|0o777 {
		t.Errorf("tmp mode = %v", f.Mode)
	}
	if !strings.Contains(string(byPath["etc/passwd"].Data), "nobody:") {
		t.Errorf("etc/passwd = %q", byPath["etc/passwd"].Data)
	}
	if _, err := WriteArchive(io.Discard, ToolboxImage("localhost/pod-networks/toolbox:v1", files)); err != nil {
		t.Error(err)
	}
}

func TestBusyboxFilesMissing(t *testing.T) {
	_, err := BusyboxFiles("/nonexistent/busybox")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("error %v, want fs.ErrNotExist", err)
	}
}
