package kubelease_test

import (
	"context"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/leadership-dev/leadership"
	"github.com/leadership-dev/leadership/kubelease"
)

// inClusterLock is the lock on Lease payments/credential-renewer, through
// the pod's service account.
func inClusterLock() (*kubelease.Lock, error) {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return kubelease.New(cs.CoordinationV1(), "payments", "credential-renewer")
}

func ExampleNew() {
	lock, err := inClusterLock()
	if err != nil {
		return
	}
	e, err := leadership.New(lock, leadership.Config{Identity: leadership.DefaultIdentity()})
	fmt.Println(e != nil, err)
}

func ExampleDecode() {
	holder, secs := "pod-1", int32(15)
	r, err := kubelease.Decode(&coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{ResourceVersion: "4711", Annotations: map[string]string{kubelease.AnnotationToken: "4702"}},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs},
	})
	fmt.Println(r.HolderIdentity, r.LeaseDuration, r.Token, r.Version, err)
	// Output: pod-1 15s 4702 4711 <nil>
}

func ExampleEncode() {
	l := kubelease.Encode(&coordinationv1.Lease{}, leadership.Record{HolderIdentity: "pod-1", LeaseDuration: 15 * time.Second, Token: 7})
	fmt.Println(*l.Spec.HolderIdentity, *l.Spec.LeaseDurationSeconds, l.Annotations[kubelease.AnnotationToken])
	// Output: pod-1 15 7
}

func ExampleLock_AnswerPing() {
	lock, err := inClusterLock()
	if err != nil {
		return
	}
	// An Elector answers probes of its own identity by itself; this is what
	// it does on seeing one.
	ctx := context.Background()
	r, err := lock.Get(ctx)
	if err != nil || r.Ping == "" || r.Pong == r.Ping {
		return
	}
	if id, ok := leadership.PingTarget(r.Ping); ok && id == "renewer-5d8f-2a91c3e0" {
		_, err = lock.AnswerPing(ctx, r.Version, r.Ping)
		fmt.Println(err)
	}
}
