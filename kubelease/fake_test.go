package kubelease

import coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"

// fakeGetter only satisfies the type for argument validation tests; nothing
// here claims Kubernetes behaviour (that lives in the e2e module).
type fakeGetter struct{}

func (fakeGetter) Leases(string) coordinationv1client.LeaseInterface { return nil }
