package ociimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// entry is one member of a tar archive, read back.
type entry struct {
	hdr  *tar.Header
	data []byte
}

// readTar returns every member of the tar archive b, in order.
func readTar(t *testing.T, b []byte) []entry {
	t.Helper()
	var entries []entry
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return entries
		}
		if err != nil {
			t.Fatalf("reading tar: %v", err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("reading %s: %v", hdr.Name, err)
		}
		entries = append(entries, entry{hdr, data})
	}
}

// image is an image-layout archive resolved the way an importer does it:
// from index.json to the manifest, and from the manifest to the config and
// the layer, each blob fetched by its descriptor's digest and verified.
type image struct {
	entries  []entry
	index    ocispec.Index
	manifest ocispec.Manifest
	config   ocispec.Image
	layerGz  []byte // the layer blob, as the manifest lists it
	layer    []byte // the layer uncompressed, as the config's diff_id names it
}

// resolve decodes archive b with the image-spec types and fails the test on
// anything an importer would reject: missing or mis-sized blobs, digests
// that do not verify, unexpected media types or schema versions.
func resolve(t *testing.T, b []byte) image {
	t.Helper()
	img := image{entries: readTar(t, b)}
	files := map[string][]byte{}
	for _, e := range img.entries {
		if e.hdr.Typeflag == tar.TypeReg {
			files[e.hdr.Name] = e.data
		}
	}
	decode := func(name string, data []byte, v any) {
		t.Helper()
		if err := json.Unmarshal(data, v); err != nil {
			t.Fatalf("decoding %s %s: %v", name, data, err)
		}
	}
	referenced := map[string]bool{}
	blob := func(d ocispec.Descriptor) []byte {
		t.Helper()
		if err := d.Digest.Validate(); err != nil || d.Digest.Algorithm() != digest.Canonical {
			t.Fatalf("descriptor %+v: digest %v, want a valid %s digest", d, err, digest.Canonical)
		}
		name := path.Join(ocispec.ImageBlobsDir, d.Digest.Algorithm().String(), d.Digest.Encoded())
		data, ok := files[name]
		if !ok {
			t.Fatalf("blob %s missing", d.Digest)
		}
		referenced[name] = true
		if int64(len(data)) != d.Size {
			t.Errorf("blob %s: %d bytes, descriptor says %d", d.Digest, len(data), d.Size)
		}
		verifyDigest(t, d.Digest, data)
		return data
	}

	var layout ocispec.ImageLayout
	decode(ocispec.ImageLayoutFile, files[ocispec.ImageLayoutFile], &layout)
	if layout.Version != ocispec.ImageLayoutVersion {
		t.Errorf("imageLayoutVersion = %q, want %q", layout.Version, ocispec.ImageLayoutVersion)
	}

	decode(ocispec.ImageIndexFile, files[ocispec.ImageIndexFile], &img.index)
	if img.index.SchemaVersion != 2 || img.index.MediaType != ocispec.MediaTypeImageIndex || len(img.index.Manifests) != 1 {
		t.Fatalf("index = %s", files[ocispec.ImageIndexFile])
	}
	md := img.index.Manifests[0]
	if md.MediaType != ocispec.MediaTypeImageManifest {
		t.Errorf("index manifest media type = %q", md.MediaType)
	}
	manifest := blob(md)
	decode("manifest", manifest, &img.manifest)
	m := img.manifest
	if m.SchemaVersion != 2 || m.MediaType != ocispec.MediaTypeImageManifest || m.Config.MediaType != ocispec.MediaTypeImageConfig ||
		len(m.Layers) != 1 || m.Layers[0].MediaType != ocispec.MediaTypeImageLayerGzip {
		t.Fatalf("manifest = %s", manifest)
	}
	decode("config", blob(m.Config), &img.config)
	img.layerGz = blob(m.Layers[0])

	zr, err := gzip.NewReader(bytes.NewReader(img.layerGz))
	if err != nil {
		t.Fatalf("layer: %v", err)
	}
	if zr.Name != "" || !zr.ModTime.IsZero() {
		t.Errorf("layer gzip header name %q mtime %v, want none", zr.Name, zr.ModTime)
	}
	if img.layer, err = io.ReadAll(zr); err != nil {
		t.Fatalf("layer: %v", err)
	}
	if img.config.RootFS.Type != "layers" || len(img.config.RootFS.DiffIDs) != 1 {
		t.Fatalf("config rootfs = %+v", img.config.RootFS)
	}
	verifyDigest(t, img.config.RootFS.DiffIDs[0], img.layer)

	for name := range files {
		if strings.HasPrefix(name, ocispec.ImageBlobsDir+"/") && !referenced[name] {
			t.Errorf("stray blob %s", name)
		}
	}
	return img
}

// verifyDigest checks data against d with go-digest's verifier.
func verifyDigest(t *testing.T, d digest.Digest, data []byte) {
	t.Helper()
	v := d.Verifier()
	if _, err := v.Write(data); err != nil {
		t.Fatal(err)
	}
	if !v.Verified() {
		t.Errorf("content does not match digest %s (it is %s)", d, digest.FromBytes(data))
	}
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
		Config: ocispec.ImageConfig{Cmd: []string{"/bin/sh"}, Env: []string{"PATH=/bin"}, WorkingDir: "/tmp"},
	}
}

func write(t *testing.T, img Image) ([]byte, ocispec.Descriptor) {
	t.Helper()
	var buf bytes.Buffer
	desc, err := WriteArchive(&buf, img)
	if err != nil {
		t.Fatalf("WriteArchive: %v", err)
	}
	return buf.Bytes(), desc
}

func TestWriteArchiveLayout(t *testing.T) {
	b, desc := write(t, testImage())
	img := resolve(t, b)

	md := img.index.Manifests[0]
	if !reflect.DeepEqual(desc, md) {
		t.Errorf("WriteArchive returned %+v, index lists %+v", desc, md)
	}
	if want := (ocispec.Platform{Architecture: runtime.GOARCH, OS: "linux"}); md.Platform == nil || !reflect.DeepEqual(*md.Platform, want) {
		t.Errorf("manifest platform = %+v, want %+v", md.Platform, want)
	}
	wantAnnotations := map[string]string{AnnotationImageName: "localhost/pod-networks/test:v1", ocispec.AnnotationRefName: "v1"}
	if !reflect.DeepEqual(md.Annotations, wantAnnotations) {
		t.Errorf("manifest annotations = %v, want %v", md.Annotations, wantAnnotations)
	}
	if img.config.Architecture != runtime.GOARCH || img.config.OS != "linux" {
		t.Errorf("config platform = %s/%s", img.config.OS, img.config.Architecture)
	}
	if img.config.Created != nil || img.config.History != nil {
		t.Errorf("config has created %v, history %v; want neither, they would break reproducibility", img.config.Created, img.config.History)
	}
	if want := testImage().Config; !reflect.DeepEqual(img.config.Config, want) {
		t.Errorf("config.config = %+v, want %+v", img.config.Config, want)
	}

	blobs := path.Join(ocispec.ImageBlobsDir, string(digest.Canonical))
	wantNames := []string{
		ocispec.ImageLayoutFile,
		ocispec.ImageIndexFile,
		ocispec.ImageBlobsDir + "/",
		blobs + "/",
		path.Join(blobs, img.manifest.Layers[0].Digest.Encoded()),
		path.Join(blobs, img.manifest.Config.Digest.Encoded()),
		path.Join(blobs, md.Digest.Encoded()),
	}
	var names []string
	for _, e := range img.entries {
		names = append(names, e.hdr.Name)
		if e.hdr.Uid != 0 || e.hdr.Gid != 0 || e.hdr.Uname != "" || e.hdr.Gname != "" || e.hdr.ModTime.Unix() != 0 {
			t.Errorf("%s: owner %d:%d (%q:%q) mtime %v, want root and the epoch", e.hdr.Name, e.hdr.Uid, e.hdr.Gid, e.hdr.Uname, e.hdr.Gname, e.hdr.ModTime)
		}
	}
	if !reflect.DeepEqual(names, wantNames) {
		t.Errorf("archive entries = %q, want %q", names, wantNames)
	}
}

func TestLayerContents(t *testing.T) {
	b, _ := write(t, testImage())
	layer := resolve(t, b).layer
	type member struct {
		typ      byte
		mode     int64
		linkname string
		data     string
	}
	want := []struct {
		name string
		member
	}{
		{"bin/", member{tar.TypeDir, 0o755, "", ""}},
		{"bin/busybox", member{tar.TypeReg, 0o4755, "", "ELF"}},
		{"bin/sh", member{tar.TypeSymlink, 0o777, "/bin/busybox", ""}},
		{"etc/", member{tar.TypeDir, 0o755, "", ""}},
		{"etc/passwd", member{tar.TypeReg, 0o644, "", "root:x:0:0::/:/bin/sh\n"}},
		{"tmp/", member{tar.TypeDir, 0o1777, "", ""}},
		{"usr/", member{tar.TypeDir, 0o755, "", ""}},
		{"usr/bin/", member{tar.TypeDir, 0o755, "", ""}},
		{"usr/bin/tool", member{tar.TypeReg, 0o755, "", "#!/bin/sh\n"}},
	}
	entries := readTar(t, layer)
	if len(entries) != len(want) {
		t.Errorf("layer has %d entries, want %d", len(entries), len(want))
	}
	seen := map[string]bool{}
	for i, e := range entries {
		hdr := e.hdr
		got := member{hdr.Typeflag, hdr.Mode, hdr.Linkname, string(e.data)}
		if i >= len(want) || hdr.Name != want[i].name || got != want[i].member {
			t.Errorf("entry %d = %s %+v", i, hdr.Name, got)
		}
		if hdr.Uid != 0 || hdr.Gid != 0 || hdr.ModTime.Unix() != 0 {
			t.Errorf("%s: uid %d gid %d mtime %v, want 0 0 epoch", hdr.Name, hdr.Uid, hdr.Gid, hdr.ModTime)
		}
		name := strings.TrimSuffix(hdr.Name, "/")
		for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
			if !seen[dir] {
				t.Errorf("%s comes before its parent %s", hdr.Name, dir)
			}
		}
		seen[name] = true
	}
}

func TestWriteArchiveReproducible(t *testing.T) {
	img := testImage()
	first, firstDesc := write(t, img)
	// Input order must not matter either.
	reversed := img
	reversed.Files = nil
	for i := len(img.Files) - 1; i >= 0; i-- {
		reversed.Files = append(reversed.Files, img.Files[i])
	}
	for _, again := range []Image{img, reversed} {
		b, desc := write(t, again)
		if !bytes.Equal(first, b) || desc.Digest != firstDesc.Digest {
			t.Errorf("rebuild differs: digest %s vs %s, %d vs %d bytes", desc.Digest, firstDesc.Digest, len(b), len(first))
		}
	}
	// And a different image must not collide.
	changed := img
	changed.Config.Cmd = []string{"/bin/true"}
	if _, desc := write(t, changed); desc.Digest == firstDesc.Digest {
		t.Errorf("changing the config kept digest %s", desc.Digest)
	}
}

func TestWriteArchiveNormalizesReference(t *testing.T) {
	for _, tc := range []struct{ ref, name, tag string }{
		{"localhost/pod-networks/pause:v1", "localhost/pod-networks/pause:v1", "v1"},
		{"localhost:5000/a/b_c:1.0-x", "localhost:5000/a/b_c:1.0-x", "1.0-x"},
		{"registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10", "3.10"},
		{"pause:v1", "docker.io/library/pause:v1", "v1"},
		{"pod-networks/pause:v1", "docker.io/pod-networks/pause:v1", "v1"},
		{"docker.io/library/busybox:1.37", "docker.io/library/busybox:1.37", "1.37"},
	} {
		img := testImage()
		img.Ref = tc.ref
		b, _ := write(t, img)
		md := resolve(t, b).index.Manifests[0]
		name := md.Annotations[AnnotationImageName]
		if name != tc.name || md.Annotations[ocispec.AnnotationRefName] != tc.tag {
			t.Errorf("ref %q: named %q tagged %q, want %q tagged %q", tc.ref, name, md.Annotations[ocispec.AnnotationRefName], tc.name, tc.tag)
		}
		// ParseNamed accepts only the canonical, fully qualified form.
		named, err := reference.ParseNamed(name)
		if err != nil {
			t.Errorf("ref %q: stored name %q is not canonical: %v", tc.ref, name, err)
			continue
		}
		if got, want := reference.FamiliarString(named), reference.FamiliarString(reference.TagNameOnly(mustParse(t, tc.ref))); got != want {
			t.Errorf("ref %q: stored name reads back as %q, want %q", tc.ref, got, want)
		}
	}
}

func mustParse(t *testing.T, ref string) reference.Named {
	t.Helper()
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		t.Fatal(err)
	}
	return named
}

func TestWriteArchiveInvalidRef(t *testing.T) {
	const hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, ref := range []string{
		"",
		"pause",
		"localhost/pod-networks/pause",
		"localhost:5000/pause",
		"localhost/Pause:v1",
		"localhost/pause:",
		"localhost/pause:v1@sha256:0123",
		"localhost/pause:v1@sha256:" + hex,
		"localhost/pause@sha256:" + hex,
		"localhost//pause:v1",
		"localhost/pause:" + strings.Repeat("x", 129),
		hex,
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
		var buf bytes.Buffer
		_, err := WriteArchive(&buf, img)
		if !errors.Is(err, ErrInvalidFile) || !strings.Contains(err.Error(), `"`+tc.bad+`"`) {
			t.Errorf("files %+v: error %v, want ErrInvalidFile naming %q", tc.files, err, tc.bad)
		}
		if buf.Len() != 0 {
			t.Errorf("files %+v: wrote %d bytes despite error", tc.files, buf.Len())
		}
	}
}

func TestImages(t *testing.T) {
	b, _ := write(t, PauseImage("localhost/pod-networks/pause:v1", []byte("ELF")))
	pause := resolve(t, b)
	if want := (ocispec.ImageConfig{Entrypoint: []string{"/pause"}}); !reflect.DeepEqual(pause.config.Config, want) {
		t.Errorf("pause config = %+v, want %+v", pause.config.Config, want)
	}
	entries := readTar(t, pause.layer)
	if len(entries) != 1 || entries[0].hdr.Name != "pause" || entries[0].hdr.Mode != 0o755 || string(entries[0].data) != "ELF" {
		t.Errorf("pause layer = %+v", entries)
	}

	b, _ = write(t, ToolboxImage("localhost/pod-networks/toolbox:v1", []File{{Path: "bin/sh", Mode: 0o755}}))
	toolbox := resolve(t, b)
	if want := (ocispec.ImageConfig{Cmd: []string{"/bin/sh"}, Env: []string{"PATH=" + toolboxPath}}); !reflect.DeepEqual(toolbox.config.Config, want) {
		t.Errorf("toolbox config = %+v, want %+v", toolbox.config.Config, want)
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
	b, _ := write(t, ToolboxImage("localhost/pod-networks/toolbox:v1", files))
	layer := map[string]*tar.Header{}
	for _, e := range readTar(t, resolve(t, b).layer) {
		layer[e.hdr.Name] = e.hdr
	}
	if h := layer["bin/sh"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "/bin/busybox" {
		t.Errorf("toolbox layer bin/sh = %+v", h)
	}
}

func TestBusyboxFilesMissing(t *testing.T) {
	_, err := BusyboxFiles("/nonexistent/busybox")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("error %v, want fs.ErrNotExist", err)
	}
}

// writeLayout writes a tar holding one index.json entry, named name, with
// the given manifests, and returns its path.
func writeLayout(t *testing.T, name string, manifests ...ocispec.Descriptor) string {
	t.Helper()
	idx, err := json.Marshal(ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: manifests,
	})
	if err != nil {
		t.Fatal(err)
	}
	return writeTar(t, map[string]string{name: string(idx)})
}

// writeTar writes a tar of the given regular files to a new file and
// returns its path.
func writeTar(t *testing.T, files map[string]string) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, data := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return writeFile(t, buf.Bytes())
}

// writeFile writes data to a new file and returns its path.
func writeFile(t *testing.T, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "image.tar")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestArchiveName(t *testing.T) {
	b, _ := write(t, PauseImage("pause:v9", []byte("x")))
	if name, err := ArchiveName(writeFile(t, b)); err != nil || name != "docker.io/library/pause:v9" {
		t.Errorf("ArchiveName of a WriteArchive output = %q, %v; want docker.io/library/pause:v9", name, err)
	}

	named := func(name string) ocispec.Descriptor {
		return ocispec.Descriptor{
			MediaType:   ocispec.MediaTypeImageManifest,
			Digest:      digest.FromString(name),
			Size:        2,
			Annotations: map[string]string{AnnotationImageName: name},
		}
	}
	if name, err := ArchiveName(writeLayout(t, "./index.json", named("localhost/x:v1"))); err != nil || name != "localhost/x:v1" {
		t.Errorf("ArchiveName with ./index.json = %q, %v", name, err)
	}

	missing := filepath.Join(t.TempDir(), "missing.tar")
	_, err := ArchiveName(missing)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "image archive missing (run make images)") || !strings.Contains(err.Error(), missing) {
		t.Errorf("ArchiveName of a missing archive = %v, want fs.ErrNotExist naming it and suggesting make images", err)
	}

	unnamed := named("")
	unnamed.Annotations = map[string]string{ocispec.AnnotationRefName: "v1"}
	const wantOne = "want one manifest named by io.containerd.image.name"
	for _, tc := range []struct {
		what, path, want string
	}{
		{"two manifests", writeLayout(t, "index.json", named("localhost/a:v1"), named("localhost/b:v1")), wantOne},
		{"no annotation", writeLayout(t, "index.json", unnamed), wantOne},
		{"no manifests", writeLayout(t, "index.json"), wantOne},
		{"no index.json", writeTar(t, map[string]string{ocispec.ImageLayoutFile: `{"imageLayoutVersion":"1.0.0"}`}), "no index.json"},
		{"bad index.json", writeTar(t, map[string]string{ocispec.ImageIndexFile: `{"manifests":`}), "decoding index.json"},
		{"not a tar", writeFile(t, bytes.Repeat([]byte("not a tar "), 100)), "reading image archive"},
	} {
		name, err := ArchiveName(tc.path)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.path) {
			t.Errorf("%s: ArchiveName = %q, %v; want an error naming %s and saying %q", tc.what, name, err, tc.path, tc.want)
		}
	}
}
