package credentials

import (
	"context"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/leadership-dev/leadership"
)

// Labels and annotations on the Secrets the workload writes.
const (
	// ManagedLabel (value "true") marks them, so a sweep finds Secrets
	// whose pod is gone.
	ManagedLabel = "leadership.dev/db-credentials"
	// TokenAnnotation holds the fencing token of the term that wrote the
	// Secret. A term with a lower token does not replace or delete it.
	TokenAnnotation = "leadership.dev/token"
	// Keys of the Secret's data.
	UsernameKey = "username"
	PasswordKey = "password"
)

func (w *Workload) annotated(obj any) (string, bool) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return "", false
	}
	v, ok := pod.Annotations[w.cfg.Annotation]
	return v, ok
}

func keyOf(obj any) (Key, bool) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return Key{}, false
	}
	return Key{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID}, true
}

// watch starts a pod informer for the term and returns once it has synced,
// with the keys of annotated pods that are added, deleted, or whose
// annotation changes.
func (w *Workload) watch(ctx context.Context) (<-chan Key, error) {
	factory := informers.NewSharedInformerFactoryWithOptions(w.kube, 0, informers.WithNamespace(w.cfg.Namespace))
	inf := factory.Core().V1().Pods().Informer()
	ch := make(chan Key, 256)
	send := func(obj any) {
		if k, ok := keyOf(obj); ok {
			select {
			case ch <- k:
			case <-ctx.Done():
			}
		}
	}
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if _, ok := w.annotated(obj); ok {
				send(obj)
			}
		},
		UpdateFunc: func(old, cur any) {
			a, aok := w.annotated(old)
			b, bok := w.annotated(cur)
			if aok != bok || a != b {
				send(cur)
			}
		},
		DeleteFunc: func(obj any) {
			if _, ok := w.annotated(obj); ok {
				send(obj)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("credentials: watching pods: %w", err)
	}
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		factory.Shutdown()
		return nil, fmt.Errorf("credentials: pod watch did not sync: %w", context.Cause(ctx))
	}
	go func() {
		<-ctx.Done()
		factory.Shutdown()
	}()
	return ch, nil
}

// livePods returns the annotated pods by UID.
func (w *Workload) livePods(ctx context.Context) (map[types.UID]*corev1.Pod, error) {
	list, err := w.kube.CoreV1().Pods(w.cfg.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("credentials: listing pods: %w", err)
	}
	out := map[types.UID]*corev1.Pod{}
	for i := range list.Items {
		p := &list.Items[i]
		if _, ok := p.Annotations[w.cfg.Annotation]; ok {
			out[p.UID] = p
		}
	}
	return out, nil
}

// sweep returns the key of every annotated pod, every credential on record
// and every Secret of ours: whatever was issued, deleted or left behind
// while nobody led is among them.
func (w *Workload) sweep(ctx context.Context, t leadership.Term) ([]Key, error) {
	live, err := w.livePods(ctx)
	if err != nil {
		return nil, err
	}
	creds, err := w.store.list(ctx, w.cfg.Namespace)
	if err != nil {
		return nil, err
	}
	secrets, err := w.kube.CoreV1().Secrets(w.cfg.Namespace).List(ctx, metav1.ListOptions{LabelSelector: ManagedLabel + "=true"})
	if err != nil {
		return nil, fmt.Errorf("credentials: listing Secrets: %w", err)
	}
	seen := map[Key]bool{}
	var keys []Key
	add := func(k Key) {
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	for _, p := range live {
		add(Key{Namespace: p.Namespace, Name: p.Name, UID: p.UID})
	}
	orphans := 0
	for _, c := range creds {
		if _, ok := live[types.UID(c.UID)]; !ok {
			orphans++
		}
		add(Key{Namespace: c.Namespace, Name: c.Pod, UID: types.UID(c.UID)})
	}
	for _, s := range secrets.Items {
		if o := podOwner(&s); o != nil {
			add(Key{Namespace: s.Namespace, Name: o.Name, UID: o.UID})
		}
	}
	w.log.Info("swept", "token", t.Token, "pods", len(live), "credentials", len(creds), "orphans", orphans, "secrets", len(secrets.Items))
	return keys, nil
}

// getPod returns the pod of k, or nil if it is gone (or replaced by another
// pod of the same name).
func (w *Workload) getPod(ctx context.Context, k Key) (*corev1.Pod, error) {
	pod, err := w.kube.CoreV1().Pods(k.Namespace).Get(ctx, k.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("credentials: reading pod %s/%s: %w", k.Namespace, k.Name, err)
	}
	if pod.UID != k.UID {
		return nil, nil
	}
	return pod, nil
}

func (w *Workload) getSecret(ctx context.Context, pod string) (*corev1.Secret, error) {
	s, err := w.kube.CoreV1().Secrets(w.cfg.Namespace).Get(ctx, SecretName(pod), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("credentials: reading Secret %s: %w", SecretName(pod), err)
	}
	return s, nil
}

func podOwner(s *corev1.Secret) *metav1.OwnerReference {
	for i, o := range s.OwnerReferences {
		if o.Kind == "Pod" && o.APIVersion == "v1" {
			return &s.OwnerReferences[i]
		}
	}
	return nil
}

func secretToken(s *corev1.Secret) uint64 {
	t, _ := strconv.ParseUint(s.Annotations[TokenAnnotation], 10, 64)
	return t
}

// issue gives pod a credential if it has none, and makes its Secret hold
// the credential's password.
func (w *Workload) issue(ctx context.Context, t leadership.Term, pod *corev1.Pod, base string) error {
	role := RoleName(w.cfg.RolePrefix, pod.UID)
	sec, err := w.getSecret(ctx, pod.Name)
	if err != nil {
		return err
	}
	current := ""
	if sec != nil {
		if o := podOwner(sec); o != nil && o.UID == pod.UID && string(sec.Data[UsernameKey]) == role {
			current = string(sec.Data[PasswordKey])
		}
	}
	// Most reconciles find everything in order: decide that without a
	// transaction.
	row, err := w.store.lookup(ctx, role)
	if err != nil {
		return err
	}
	if row != nil && current != "" && row.PasswordSHA256 == passwordHash(current) {
		return nil
	}
	if row == nil && pod.DeletionTimestamp != nil {
		return nil // terminating: no new credential
	}
	pw, changed, err := w.store.ensure(ctx, t.Token, credential{
		Role: role, Namespace: pod.Namespace, Pod: pod.Name, UID: string(pod.UID), BaseRole: base,
	}, current, w.cfg.TTL)
	if err != nil || !changed {
		return err
	}
	if row == nil {
		w.log.Info("issued credential", "pod", pod.Name, "uid", pod.UID, "role", role, "token", t.Token)
	} else {
		w.log.Info("rotated the password of a credential whose Secret did not hold it", "pod", pod.Name, "role", role, "token", t.Token)
	}
	return w.writeSecret(ctx, t, pod, sec, role, pw)
}

// writeSecret creates or replaces the pod's Secret. A replacement is a
// compare-and-swap on the version read, and only by a term at least as
// recent as the one that wrote it.
func (w *Workload) writeSecret(ctx context.Context, t leadership.Term, pod *corev1.Pod, existing *corev1.Secret, role, pw string) error {
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:        SecretName(pod.Name),
			Namespace:   pod.Namespace,
			Labels:      map[string]string{ManagedLabel: "true"},
			Annotations: map[string]string{TokenAnnotation: strconv.FormatUint(t.Token, 10)},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID,
			}},
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{UsernameKey: []byte(role), PasswordKey: []byte(pw)},
	}
	secrets := w.kube.CoreV1().Secrets(pod.Namespace)
	if existing == nil {
		if _, err := secrets.Create(ctx, s, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("credentials: creating Secret %s: %w", s.Name, err)
		}
		return nil
	}
	if tok := secretToken(existing); tok > t.Token {
		return &StaleTokenError{Op: "write Secret " + s.Name, Token: t.Token, Highest: tok}
	}
	s.ResourceVersion = existing.ResourceVersion
	if _, err := secrets.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("credentials: replacing Secret %s: %w", s.Name, err)
	}
	return nil
}

// deleteSecret deletes the Secret of k's pod if that pod owns it: a Secret
// of the same name may already belong to a new pod of the same name.
func (w *Workload) deleteSecret(ctx context.Context, t leadership.Term, k Key) error {
	sec, err := w.getSecret(ctx, k.Name)
	if err != nil || sec == nil {
		return err
	}
	if o := podOwner(sec); o == nil || o.UID != k.UID {
		return nil
	}
	if tok := secretToken(sec); tok > t.Token {
		return &StaleTokenError{Op: "delete Secret " + sec.Name, Token: t.Token, Highest: tok}
	}
	err = w.kube.CoreV1().Secrets(k.Namespace).Delete(ctx, sec.Name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &sec.UID, ResourceVersion: &sec.ResourceVersion},
	})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("credentials: deleting Secret %s: %w", sec.Name, err)
	}
	if err == nil {
		w.log.Info("deleted Secret", "secret", sec.Name, "pod", k.Name, "uid", k.UID)
	}
	return nil
}
