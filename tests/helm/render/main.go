// Command render renders a Helm chart offline, without helm: Go's
// text/template with sprig and the few functions Helm adds (include, tpl,
// required, toYaml, fromYaml, fromJson, lookup), values merged the way Helm
// merges them. It writes the manifests as multi-document YAML, the way
// `helm template` prints them, and as JSON so a test in any language can read
// them without a YAML parser.
//
// It is built in GOPATH mode from Debian packages only (golang-go,
// golang-github-masterminds-sprig-dev, golang-gopkg-yaml.v2-dev); see
// tests/helm/test_chart.py.
//
// Usage:
//
//	render -chart DIR [-f values.yaml]... [-release NAME] [-namespace NS]
//	       [-kube-version 1.28.0] [-out-yaml FILE] [-out-json FILE]
//
// JSON output: {"manifests": [{"source": "chart/templates/x.yaml",
// "object": {...}, "parsedData": {"key.yaml": {...}}}], "notes": "..."}.
// parsedData holds the YAML or JSON files a ConfigMap or Secret (stringData)
// carries, parsed, so their content can be checked too.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/semver/v3"
	"github.com/Masterminds/sprig/v3"
	yaml "gopkg.in/yaml.v2"
)

// Helm's limit on nested include calls, which stops runaway recursion.
const maxIncludeDepth = 1000

type valueFiles []string

func (v *valueFiles) String() string     { return strings.Join(*v, ",") }
func (v *valueFiles) Set(s string) error { *v = append(*v, s); return nil }

// jsonCompatible turns what yaml.v2 decodes (map[interface{}]interface{})
// into what encoding/json can marshal.
func jsonCompatible(v interface{}) interface{} {
	switch t := v.(type) {
	case map[interface{}]interface{}:
		m := make(map[string]interface{}, len(t))
		for k, val := range t {
			m[fmt.Sprint(k)] = jsonCompatible(val)
		}
		return m
	case []interface{}:
		for i := range t {
			t[i] = jsonCompatible(t[i])
		}
		return t
	default:
		return v
	}
}

// parseYAML decodes YAML the way Helm reads values (sigs.k8s.io/yaml): YAML
// to JSON to Go, so every number is a float64 and every key a string. strict
// rejects duplicate keys, as Kubernetes does.
func parseYAML(data []byte, strict bool) (interface{}, error) {
	var raw interface{}
	var err error
	if strict {
		err = yaml.UnmarshalStrict(data, &raw)
	} else {
		err = yaml.Unmarshal(data, &raw)
	}
	if err != nil {
		return nil, err
	}
	j, err := json.Marshal(jsonCompatible(raw))
	if err != nil {
		return nil, err
	}
	var out interface{}
	if err := json.Unmarshal(j, &out); err != nil {
		return nil, err
	}
	return out, nil
}

func parseYAMLMap(data []byte) (map[string]interface{}, error) {
	v, err := parseYAML(data, false)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return map[string]interface{}{}, nil
	}
	m, ok := v.(map[string]interface{})
	if !ok {
		return nil, errors.New("not a YAML mapping")
	}
	return m, nil
}

// toYAML is Helm's toYaml: JSON first (so numbers print as JSON does), then
// YAML with sorted keys and no trailing newline.
func toYAML(v interface{}) string {
	j, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	var o interface{}
	if err := yaml.Unmarshal(j, &o); err != nil {
		return ""
	}
	out, err := yaml.Marshal(o)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(out), "\n")
}

// fromYAML is Helm's fromYaml: errors become an "Error" key, not a failure.
func fromYAML(s string) map[string]interface{} {
	m, err := parseYAMLMap([]byte(s))
	if err != nil {
		return map[string]interface{}{"Error": err.Error()}
	}
	return m
}

func fromJSON(s string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return map[string]interface{}{"Error": err.Error()}
	}
	return m
}

func required(msg string, val interface{}) (interface{}, error) {
	if val == nil {
		return val, errors.New(msg)
	}
	if s, ok := val.(string); ok && s == "" {
		return val, errors.New(msg)
	}
	return val, nil
}

// funcMap is sprig's text functions minus env/expandenv (Helm removes them),
// plus Helm's own; include and tpl work on the template set t.
func funcMap(t *template.Template, depth map[string]int) template.FuncMap {
	f := sprig.TxtFuncMap()
	delete(f, "env")
	delete(f, "expandenv")
	f["toYaml"] = toYAML
	f["fromYaml"] = fromYAML
	f["fromJson"] = fromJSON
	f["required"] = required
	f["lookup"] = func(apiVersion, kind, namespace, name string) (map[string]interface{}, error) {
		return map[string]interface{}{}, nil // no cluster, as `helm template`
	}
	f["include"] = func(name string, data interface{}) (string, error) {
		if depth[name] > maxIncludeDepth {
			return "", fmt.Errorf("rendering template has a nested reference name: %s", name)
		}
		depth[name]++
		defer func() { depth[name]-- }()
		var buf bytes.Buffer
		if err := t.ExecuteTemplate(&buf, name, data); err != nil {
			return "", err
		}
		return buf.String(), nil
	}
	f["tpl"] = func(text string, data interface{}) (string, error) {
		clone, err := t.Clone()
		if err != nil {
			return "", err
		}
		// include and tpl inside the text see the clone, so a define in the
		// text can be included from it.
		clone.Funcs(funcMap(clone, depth))
		parsed, err := clone.New(t.Name() + "/tpl").Parse(text)
		if err != nil {
			return "", fmt.Errorf("cannot parse template %q: %v", text, err)
		}
		var buf bytes.Buffer
		if err := parsed.Execute(&buf, data); err != nil {
			return "", fmt.Errorf("error calling tpl: %v", err)
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
	return f
}

// mergeValues lays src over dst as Helm does: maps merge key by key, anything
// else replaces, and a null in src deletes the key.
func mergeValues(dst, src map[string]interface{}) map[string]interface{} {
	for k, sv := range src {
		if sv == nil {
			delete(dst, k)
			continue
		}
		sm, sIsMap := sv.(map[string]interface{})
		dm, dIsMap := dst[k].(map[string]interface{})
		if sIsMap && dIsMap {
			dst[k] = mergeValues(dm, sm)
		} else {
			dst[k] = sv
		}
	}
	return dst
}

// apiVersions answers .Capabilities.APIVersions.Has.
type apiVersions []string

func (a apiVersions) Has(v string) bool {
	for _, x := range a {
		if x == v {
			return true
		}
	}
	return false
}

type manifest struct {
	Source     string                 `json:"source"`
	Object     interface{}            `json:"object"`
	ParsedData map[string]interface{} `json:"parsedData,omitempty"`
	text       string
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// parseEmbedded parses the YAML/JSON files a ConfigMap's data (or a Secret's
// stringData) carries.
func parseEmbedded(obj map[string]interface{}) (map[string]interface{}, error) {
	var data map[string]interface{}
	switch obj["kind"] {
	case "ConfigMap":
		data, _ = obj["data"].(map[string]interface{})
	case "Secret":
		data, _ = obj["stringData"].(map[string]interface{})
	}
	parsed := map[string]interface{}{}
	for key, v := range data {
		s, ok := v.(string)
		ext := path.Ext(key)
		if !ok || (ext != ".yaml" && ext != ".yml" && ext != ".json") {
			continue
		}
		val, err := parseYAML([]byte(s), true)
		if err != nil {
			return nil, fmt.Errorf("data key %s: %v", key, err)
		}
		parsed[key] = val
	}
	if len(parsed) == 0 {
		return nil, nil
	}
	return parsed, nil
}

func render(chartDir string, files []string, release, namespace, kubeVersion string) ([]manifest, string, error) {
	chartFile, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		return nil, "", err
	}
	meta, err := parseYAMLMap(chartFile)
	if err != nil {
		return nil, "", fmt.Errorf("Chart.yaml: %v", err)
	}
	if meta["apiVersion"] != "v2" {
		return nil, "", fmt.Errorf("Chart.yaml: apiVersion must be v2, got %v", meta["apiVersion"])
	}
	name, _ := meta["name"].(string)
	if name == "" || meta["version"] == nil {
		return nil, "", errors.New("Chart.yaml: name and version are required")
	}
	if _, err := semver.StrictNewVersion(fmt.Sprint(meta["version"])); err != nil {
		return nil, "", fmt.Errorf("Chart.yaml: version %v is not SemVer 2: %v", meta["version"], err)
	}
	kv, err := semver.NewVersion(kubeVersion)
	if err != nil {
		return nil, "", fmt.Errorf("-kube-version: %v", err)
	}
	if c, ok := meta["kubeVersion"].(string); ok && c != "" {
		constraint, err := semver.NewConstraint(c)
		if err != nil {
			return nil, "", fmt.Errorf("Chart.yaml kubeVersion: %v", err)
		}
		if !constraint.Check(kv) {
			return nil, "", fmt.Errorf("chart requires kubeVersion %s, which is incompatible with Kubernetes v%s", c, kv)
		}
	}
	// Helm exposes Chart.yaml with capitalised keys (.Chart.AppVersion).
	chart := map[string]interface{}{}
	for k, v := range meta {
		key := strings.ToUpper(k[:1]) + k[1:]
		if k == "apiVersion" {
			key = "APIVersion"
		}
		chart[key] = v
	}

	valuesFile, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil && !os.IsNotExist(err) {
		return nil, "", err
	}
	values, err := parseYAMLMap(valuesFile)
	if err != nil {
		return nil, "", fmt.Errorf("values.yaml: %v", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, "", err
		}
		over, err := parseYAMLMap(data)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %v", f, err)
		}
		values = mergeValues(values, over)
	}

	// Every file under templates/ joins one template set, named
	// "<chart>/templates/<path>" as in Helm, so defines are shared.
	templatesDir := filepath.Join(chartDir, "templates")
	var names []string
	sources := map[string]string{}
	err = filepath.Walk(templatesDir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(templatesDir, p)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		n := path.Join(name, "templates", filepath.ToSlash(rel))
		names = append(names, n)
		sources[n] = string(data)
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	sort.Strings(names)
	root := template.New("gotpl")
	root.Option("missingkey=zero")
	root.Funcs(funcMap(root, map[string]int{}))
	for _, n := range names {
		if _, err := root.New(n).Parse(sources[n]); err != nil {
			return nil, "", err
		}
	}

	top := map[string]interface{}{
		"Values":  values,
		"Chart":   chart,
		"Release": map[string]interface{}{"Name": release, "Namespace": namespace, "Service": "Helm", "IsInstall": true, "IsUpgrade": false, "Revision": 1},
		"Capabilities": map[string]interface{}{
			"KubeVersion": map[string]interface{}{"Version": "v" + kv.String(), "GitVersion": "v" + kv.String(), "Major": fmt.Sprint(kv.Major()), "Minor": fmt.Sprint(kv.Minor())},
			"APIVersions": apiVersions{"v1", "apps/v1", "policy/v1", "networking.k8s.io/v1", "autoscaling/v2"},
		},
	}
	execute := func(n string) (string, error) {
		data := map[string]interface{}{}
		for k, v := range top {
			data[k] = v
		}
		data["Template"] = map[string]interface{}{"Name": n, "BasePath": path.Join(name, "templates")}
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, n, data); err != nil {
			return "", err
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}

	var out []manifest
	notes := ""
	for _, n := range names {
		base := path.Base(n)
		if strings.HasPrefix(base, "_") {
			continue
		}
		text, err := execute(n)
		if err != nil {
			return nil, "", err
		}
		if base == "NOTES.txt" {
			notes = text
			continue
		}
		for _, doc := range docSeparator.Split(text, -1) {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			obj, err := parseYAML([]byte(doc), true)
			if err != nil {
				return nil, "", fmt.Errorf("%s: rendered YAML does not parse: %v\n%s", n, err, doc)
			}
			if obj == nil {
				continue // comments only
			}
			m, ok := obj.(map[string]interface{})
			if !ok || m["apiVersion"] == nil || m["kind"] == nil {
				return nil, "", fmt.Errorf("%s: a document without apiVersion and kind:\n%s", n, doc)
			}
			parsed, err := parseEmbedded(m)
			if err != nil {
				return nil, "", fmt.Errorf("%s: %v", n, err)
			}
			out = append(out, manifest{Source: n, Object: m, ParsedData: parsed, text: strings.Trim(doc, "\n")})
		}
	}
	return out, notes, nil
}

func main() {
	var files valueFiles
	chartDir := flag.String("chart", "", "chart directory (holding Chart.yaml)")
	flag.Var(&files, "f", "values file laid over the chart's values.yaml (repeatable)")
	release := flag.String("release", "release-name", "release name")
	namespace := flag.String("namespace", "default", "release namespace")
	kubeVersion := flag.String("kube-version", "1.28.0", "Kubernetes version for .Capabilities and Chart.yaml kubeVersion")
	outYAML := flag.String("out-yaml", "-", "where to write the manifests as YAML (- for stdout)")
	outJSON := flag.String("out-json", "", "where to write the manifests as JSON")
	flag.Parse()
	if *chartDir == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: render -chart DIR [-f values.yaml]... [-out-yaml FILE] [-out-json FILE]")
		os.Exit(2)
	}
	manifests, notes, err := render(*chartDir, files, *release, *namespace, *kubeVersion)
	if err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
	var y strings.Builder
	for _, m := range manifests {
		fmt.Fprintf(&y, "---\n# Source: %s\n%s\n", m.Source, m.text)
	}
	if *outYAML == "-" {
		os.Stdout.WriteString(y.String())
	} else if err := os.WriteFile(*outYAML, []byte(y.String()), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
	if *outJSON != "" {
		j, err := json.MarshalIndent(map[string]interface{}{"manifests": manifests, "notes": notes}, "", " ")
		if err == nil {
			err = os.WriteFile(*outJSON, j, 0o644)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "render:", err)
			os.Exit(1)
		}
	}
}
