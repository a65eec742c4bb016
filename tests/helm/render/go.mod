// The offline Helm renderer used by tests/helm/test_chart.py. It is built in
// GOPATH mode (GO111MODULE=off, GOPROXY=off) against the sources Debian
// installs under /usr/share/gocode (golang-github-masterminds-sprig-dev,
// golang-gopkg-yaml.v2-dev), so it needs no network and no go.sum. This file
// makes the go command resolve the ".../v3" import paths of sprig and semver
// to those GOPATH folders (minimal module compatibility).
module qfp.invalid/helmrender

go 1.19
