package podrunner

import (
	"fmt"
	"slices"
	"strings"
)

// ImageRepository is where the lab's images live: plexus.dev/lab/<program>.
const ImageRepository = "plexus.dev/lab/"

// Programs are the images the lab can run: each is a subcommand of the
// lab-image binary built from test/lab/images.
var Programs = []string{"client", "echo", "pause", "echo-basic"}

// foreignImages are upstream images the lab stands in for with a program
// built from the same source: the Gateway API conformance suite's echo
// server (lab-image runs bin/echo-basic, built from the conformance module
// the suite comes from).
var foreignImages = map[string]string{
	"registry.k8s.io/gateway-api/echo-basic":                               "echo-basic",
	"gcr.io/k8s-staging-gateway-api/echo-basic":                            "echo-basic",
	"us-central1-docker.pkg.dev/k8s-staging-images/gateway-api/echo-basic": "echo-basic",
}

// ProgramFor maps an image reference to the lab-image subcommand that stands
// for it. Tags and digests are ignored (every tag is the program built from
// this checkout). Unknown images get an error that lists the known ones; it
// becomes the container's ErrImagePull message.
func ProgramFor(image string) (string, error) {
	ref := image
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		ref = ref[:i]
	}
	// A tag follows the last colon after the last slash (a colon before it
	// belongs to a registry port).
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		ref = ref[:i]
	}
	if name, ok := strings.CutPrefix(ref, ImageRepository); ok && slices.Contains(Programs, name) {
		return name, nil
	}
	if name, ok := foreignImages[ref]; ok {
		return name, nil
	}
	known := make([]string, len(Programs))
	for i, p := range Programs {
		known[i] = ImageRepository + p
	}
	return "", fmt.Errorf("image %q is not in the lab; the lab runs %s", image, strings.Join(known, ", "))
}
