// Command crdversions adds extra served versions to a generated CRD, each a copy
// of the storage version's schema. The seed system serves some kinds at an older
// version too (CiliumLoadBalancerIPPool at v2alpha1 beside v2) with the very same
// schema; copying it here keeps one Go type per kind instead of two identical
// packages, and the API server converts between identical schemas by itself.
//
// Usage: crdversions FILE VERSION...
package main

import (
	"fmt"
	"os"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: crdversions FILE VERSION...")
		os.Exit(2)
	}
	if err := addVersions(os.Args[1], os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "crdversions:", err)
		os.Exit(1)
	}
}

func addVersions(path string, versions []string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(raw, &crd); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	var storage *apiextensionsv1.CustomResourceDefinitionVersion
	for i := range crd.Spec.Versions {
		if crd.Spec.Versions[i].Storage {
			storage = &crd.Spec.Versions[i]
		}
	}
	if storage == nil {
		return fmt.Errorf("%s has no storage version", path)
	}
	for _, name := range versions {
		for _, v := range crd.Spec.Versions {
			if v.Name == name {
				return fmt.Errorf("%s already serves %s", path, name)
			}
		}
		extra := *storage.DeepCopy()
		extra.Name = name
		extra.Storage = false
		crd.Spec.Versions = append(crd.Spec.Versions, extra)
	}
	out, err := yaml.Marshal(&crd)
	if err != nil {
		return err
	}
	// Keep the document shape controller-gen writes: no empty status block.
	var doc map[string]any
	if err := yaml.Unmarshal(out, &doc); err != nil {
		return err
	}
	delete(doc, "status")
	if md, ok := doc["metadata"].(map[string]any); ok && md["creationTimestamp"] == nil {
		delete(md, "creationTimestamp")
	}
	out, err = yaml.Marshal(doc)
	if err != nil {
		return err
	}
	return os.WriteFile(path, append([]byte("---\n"), out...), 0o644)
}
