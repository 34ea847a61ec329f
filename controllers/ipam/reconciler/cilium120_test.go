package reconciler

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
)

// Cilium 1.20's CiliumNode fields are accepted and kept through the
// controller's own writes; a cloud IPAM section makes CloudIPAMSupported
// False, naming it, and removing the section removes the condition.
func TestCiliumNodeFieldsOfCilium120AreKept(t *testing.T) {
	h := newHarness(t)
	h.start(clusterPool("10.0.0.0/8"))
	h.node("n120", withAddress("198.18.0.120"))
	h.waitCIDRs("n120")
	patch := `{"spec": {
		"bootid": "6b1c2c1e-0000-4000-8000-000000000001",
		"health": {"ipv4": "10.0.0.5"}, "ingress": {"ipv4": "10.0.0.6"}, "encryption": {"key": 3},
		"eni": {"instance-type": "m5.large", "vpc-id": "vpc-1", "subnet-ids": ["subnet-1"]},
		"ipam": {"static-ip-tags": {"team": "a"}, "ipv6-pool": {"fd00::5": {"owner": "x"}}}}}`
	must(t, h.c.Patch(h.ctx, &ciliumv2.CiliumNode{ObjectMeta: metav1.ObjectMeta{Name: "n120"}}, client.RawPatch(types.MergePatchType, []byte(patch)),
		&client.PatchOptions{FieldValidation: metav1.FieldValidationStrict}))
	h.eventually("CloudIPAMSupported False naming spec.eni", func() error {
		cn, err := h.ciliumNode("n120")
		if err != nil {
			return err
		}
		c := meta.FindStatusCondition(cn.Status.Conditions, ciliumv2.NodeConditionCloudIPAMSupported)
		if c == nil || c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, "spec.eni") || c.ObservedGeneration != cn.Generation {
			return fmt.Errorf("CloudIPAMSupported %+v", c)
		}
		return nil
	})
	cn, err := h.ciliumNode("n120")
	must(t, err)
	var eni map[string]any
	must(t, json.Unmarshal(cn.Spec.ENI.Raw, &eni))
	if eni["vpc-id"] != "vpc-1" || cn.Spec.BootID == "" || cn.Spec.Encryption.Key != 3 || cn.Spec.Health.IPv4 != "10.0.0.5" ||
		cn.Spec.IPAM.StaticIPTags["team"] != "a" || cn.Spec.IPAM.IPv6Pool["fd00::5"].Owner != "x" || len(cn.Spec.IPAM.PodCIDRs) != 1 {
		t.Errorf("spec after the controller's writes: %+v (eni %v)", cn.Spec, eni)
	}

	must(t, h.c.Patch(h.ctx, &ciliumv2.CiliumNode{ObjectMeta: metav1.ObjectMeta{Name: "n120"}}, client.RawPatch(types.MergePatchType, []byte(`{"spec": {"eni": null}}`))))
	h.eventually("CloudIPAMSupported gone with the section", func() error {
		cn, err := h.ciliumNode("n120")
		if err != nil {
			return err
		}
		if c := meta.FindStatusCondition(cn.Status.Conditions, ciliumv2.NodeConditionCloudIPAMSupported); c != nil {
			return fmt.Errorf("CloudIPAMSupported %+v", c)
		}
		return nil
	})
}
