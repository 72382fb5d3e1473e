package credentials

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
)

// RoleName is the PostgreSQL role of the pod with this UID: prefix followed
// by the UID's 32 hex digits (or a hash of a UID that is not a UUID). It
// depends on nothing else, so any leader, in any term, finds the role that
// an earlier leader issued for a pod, and a pod never gets two roles.
func RoleName(prefix string, uid types.UID) string {
	u := strings.ReplaceAll(string(uid), "-", "")
	if !hex32.MatchString(u) {
		sum := sha256.Sum256([]byte(uid))
		u = hex.EncodeToString(sum[:16])
	}
	return prefix + u
}

var hex32 = regexp.MustCompile(`^[0-9a-f]{32}$`)

// SecretSuffix ends the name of the Secret that holds a pod's credential.
const SecretSuffix = "-db-credentials"

// SecretName is the name of the Secret holding the credential of the pod
// named pod: pod + SecretSuffix, so that the pod's spec can refer to it
// before the pod exists. A pod name too long for that is shortened and
// made unique with a hash of the full name.
func SecretName(pod string) string {
	n := pod + SecretSuffix
	if len(n) <= validation.DNS1123SubdomainMaxLength {
		return n
	}
	sum := sha256.Sum256([]byte(pod))
	h := hex.EncodeToString(sum[:4])
	keep := validation.DNS1123SubdomainMaxLength - len(SecretSuffix) - len(h) - 1
	return strings.TrimRight(pod[:keep], "-.") + "-" + h + SecretSuffix
}

// baseRolePattern is what the annotation may name: a plain lower-case
// PostgreSQL identifier, which needs no quoting and cannot smuggle SQL.
var baseRolePattern = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

func checkBaseRole(annotation, v string) error {
	if !baseRolePattern.MatchString(v) {
		return fmt.Errorf("annotation %s=%q is not a base role name: it must be a lower-case PostgreSQL identifier (letters a-z, digits, '_', not starting with a digit, at most 63 characters)", annotation, v)
	}
	return nil
}

// rolePrefixPattern keeps RoleName within PostgreSQL's 63 bytes and free of
// quoting.
var rolePrefixPattern = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,30}$`)
