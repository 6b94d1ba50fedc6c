// Package deployment holds the tests of the deployment files: the Helm chart,
// the plain manifests generated from it, the sidecar example, and the image.
package deployment

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The Kubernetes objects, reduced to the fields the tests look at. The
// product's module has no Kubernetes API dependency and these tests do not
// bring one in: YAML is decoded with go.yaml.in/yaml/v3, already in the
// module graph (gomega).

type object struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string
	Metadata   metadata
	// ServiceAccount
	AutomountServiceAccountToken *bool `yaml:"automountServiceAccountToken"`
	// DaemonSet
	Spec struct {
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		}
		Template struct {
			Metadata metadata
			Spec     podSpec
		}
		UpdateStrategy struct {
			Type          string
			RollingUpdate *struct {
				MaxUnavailable any `yaml:"maxUnavailable"`
				MaxSurge       any `yaml:"maxSurge"`
			} `yaml:"rollingUpdate"`
		} `yaml:"updateStrategy"`
	}
}

// pod is a Pod: its spec is at the top, not under a template.
type pod struct {
	Kind     string
	Metadata metadata
	Spec     podSpec
}

type metadata struct {
	Name        string
	Namespace   string
	Labels      map[string]string
	Annotations map[string]string
}

type podSpec struct {
	ServiceAccountName           string            `yaml:"serviceAccountName"`
	TerminationGracePeriod       *int              `yaml:"terminationGracePeriodSeconds"`
	AutomountServiceAccountToken *bool             `yaml:"automountServiceAccountToken"`
	HostPID                      bool              `yaml:"hostPID"`
	HostNetwork                  bool              `yaml:"hostNetwork"`
	RuntimeClassName             string            `yaml:"runtimeClassName"`
	NodeSelector                 map[string]string `yaml:"nodeSelector"`
	SecurityContext              struct {
		SupplementalGroups []int `yaml:"supplementalGroups"`
	} `yaml:"securityContext"`
	InitContainers []container `yaml:"initContainers"`
	Containers     []container
	Volumes        []volume
}

type container struct {
	Name            string
	Image           string
	Command         []string
	Args            []string
	RestartPolicy   string          `yaml:"restartPolicy"`
	SecurityContext securityContext `yaml:"securityContext"`
	StartupProbe    *probe          `yaml:"startupProbe"`
	LivenessProbe   *probe          `yaml:"livenessProbe"`
	ReadinessProbe  *probe          `yaml:"readinessProbe"`
	VolumeMounts    []volumeMount   `yaml:"volumeMounts"`
	Resources       struct {
		Limits map[string]string
	}
}

type securityContext struct {
	Privileged               *bool `yaml:"privileged"`
	RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
	RunAsUser                *int  `yaml:"runAsUser"`
	RunAsGroup               *int  `yaml:"runAsGroup"`
	ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
	AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
	Capabilities             struct {
		Add  []string
		Drop []string
	}
}

type probe struct {
	Exec struct {
		Command []string
	}
	TimeoutSeconds int `yaml:"timeoutSeconds"`
}

type volumeMount struct {
	Name      string
	MountPath string `yaml:"mountPath"`
	ReadOnly  bool   `yaml:"readOnly"`
}

type volume struct {
	Name     string
	HostPath *struct {
		Path string
		Type string
	} `yaml:"hostPath"`
	EmptyDir *struct {
		Medium string
	} `yaml:"emptyDir"`
}

// repoRoot is the repository root: tests run in deployment/.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// helmPath is the helm pinned in tools/go.mod, built once: `go tool` would
// check its build for every one of the tests' many helm runs.
var helmPath = sync.OnceValues(func() (string, error) {
	root, err := filepath.Abs("..")
	if err != nil {
		return "", err
	}
	cmd := exec.Command("go", "tool", "-n", "-modfile="+filepath.Join(root, "tools/go.mod"), "helm")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go tool -n helm: %w", err)
	}
	bin := strings.TrimSpace(string(out))
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("go tool -n helm printed %q: %w", bin, err)
	}
	return bin, nil
})

// helm runs the pinned helm from the repository root and returns its
// standard output; a failure is returned with its stderr.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin, err := helmPath()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = repoRoot(t)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), &cmdError{args: args, err: err, stderr: stderr.String()}
	}
	return stdout.String(), nil
}

type cmdError struct {
	args   []string
	err    error
	stderr string
}

func (e *cmdError) Error() string {
	return "helm " + strings.Join(e.args, " ") + ": " + e.err.Error() + "\n" + e.stderr
}

// decodeAll decodes every document of a multi-document YAML stream, skipping
// empty ones (comments only) as kubectl does.
func decodeAll[T any](t *testing.T, name, stream string) []T {
	t.Helper()
	var out []T
	dec := yaml.NewDecoder(strings.NewReader(stream))
	for {
		var node yaml.Node
		err := dec.Decode(&node)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(node.Content) == 0 || node.Content[0].Kind != yaml.MappingNode {
			continue
		}
		var v T
		if err := node.Decode(&v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out = append(out, v)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
