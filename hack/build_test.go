// Package hack_test checks the build script that the Makefile and the
// Dockerfile share, since this machine has no Docker engine to build the
// image with.
package hack_test

import (
	"bufio"
	"debug/buildinfo"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var binaries = []string{"manager", "peernode"}

// TestBuildScriptProducesStaticReproducibleBinaries runs hack/build.sh and
// checks what the Dockerfile's distroless static image needs: statically
// linked binaries (no ELF interpreter), built with CGO_ENABLED=0, -trimpath
// and the injected version.
func TestBuildScriptProducesStaticReproducibleBinaries(t *testing.T) {
	out := t.TempDir()
	cmd := exec.Command("bash", "build.sh", out)
	cmd.Env = append(os.Environ(), "VERSION=v0.0.0-test")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hack/build.sh failed: %v\n%s", err, b)
	}
	for _, name := range binaries {
		path := filepath.Join(out, name)
		f, err := elf.Open(path)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s is dynamically linked (has an ELF interpreter)", name)
			}
		}
		f.Close()

		info, err := buildinfo.ReadFile(path)
		if err != nil {
			t.Fatalf("%s: build info: %v", name, err)
		}
		settings := map[string]string{}
		for _, s := range info.Settings {
			settings[s.Key] = s.Value
		}
		if settings["CGO_ENABLED"] != "0" {
			t.Errorf("%s: CGO_ENABLED=%q, want 0", name, settings["CGO_ENABLED"])
		}
		if settings["-trimpath"] != "true" {
			t.Errorf("%s: not built with -trimpath", name)
		}
		// The injected version is checked by running the binary below: Go
		// does not record -ldflags in the build info of -trimpath builds.
		v, err := exec.Command(path, "version").Output()
		if err != nil || !strings.Contains(string(v), "v0.0.0-test") {
			t.Errorf("%s version = %q, %v", name, v, err)
		}
	}
}

// TestDockerfileUsesBuildScript keeps the Dockerfile and `make build` in
// sync: both must compile through hack/build.sh, and the final stage must be
// distroless static, nonroot, with both binaries and no shell.
func TestDockerfileUsesBuildScript(t *testing.T) {
	stages := dockerStages(t, "../Dockerfile")
	if len(stages) != 2 {
		t.Fatalf("want a two-stage Dockerfile, got %d stages", len(stages))
	}
	builder, final := stages[0], stages[1]
	if !regexp.MustCompile(`^FROM golang:\d+\.\d+\.\d+\S* AS builder$`).MatchString(builder[0]) {
		t.Errorf("builder stage must use a golang image pinned by version: %q", builder[0])
	}
	if !containsLine(builder, regexp.MustCompile(`^RUN .*hack/build\.sh /out$`)) {
		t.Errorf("builder stage must build with hack/build.sh /out")
	}
	if !regexp.MustCompile(`^FROM gcr\.io/distroless/static\S*:nonroot$`).MatchString(final[0]) {
		t.Errorf("final stage must be distroless static nonroot: %q", final[0])
	}
	for _, b := range binaries {
		if !containsLine(final, regexp.MustCompile(`^COPY --from=builder /out/`+b+` /`+b+`$`)) {
			t.Errorf("final stage does not copy %s", b)
		}
	}
	if !containsLine(final, regexp.MustCompile(`^USER 65532:65532$`)) {
		t.Errorf("final stage must run as the nonroot user 65532")
	}
	if containsLine(final, regexp.MustCompile(`^RUN `)) {
		t.Errorf("final stage has a RUN step, which needs a shell the image must not have")
	}

	mk, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^build:.*\n\thack/build\.sh `).Match(mk) {
		t.Errorf("make build must call hack/build.sh")
	}
}

// dockerStages splits a Dockerfile into stages of instruction lines.
func dockerStages(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var stages [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "FROM ") {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			t.Fatalf("instruction before FROM: %q", line)
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], line)
	}
	return stages
}

func containsLine(lines []string, re *regexp.Regexp) bool {
	for _, l := range lines {
		if re.MatchString(l) {
			return true
		}
	}
	return false
}
