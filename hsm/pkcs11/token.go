//go:build cgo && !nopkcs11

// Package pkcs11 gives sealsign a PKCS#11 token's entropy and a sealing key
// that never leaves it, on github.com/miekg/pkcs11. A token is named by an
// RFC 7512 URI (see URI); Open loads the module, finds the token by label and
// logs in as the user; Token.Read draws random bytes from C_GenerateRandom;
// Token.Sealer returns an hsm.Sealer doing AES-256-GCM inside the token.
//
// Build with CGO_ENABLED=1. Without cgo, or with the nopkcs11 tag, Open
// fails with ErrUnsupported.
//
// SoftHSM reads SOFTHSM2_CONF from the process environment when the module is
// initialised, that is when the first Token of a module is opened in the
// process (and again after the last one is closed). A process that opens
// SoftHSM tokens must have that variable set before Open: tests use
// t.Setenv, launchers append softhsm.Env.Environ() to the child's
// environment. One process cannot use two SoftHSM configurations at once.
package pkcs11

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

	p11 "github.com/miekg/pkcs11"
)

// maxSessions bounds the sessions one Token opens for its operations. Each
// operation holds one session for its duration; sessions are reused.
const maxSessions = 8

// module is one loaded PKCS#11 library, shared by every Token that names its
// path: PKCS#11 allows one C_Initialize per process, and login state belongs
// to the process, not to a session.
type module struct {
	path string
	ctx  *p11.Ctx
	// refs counts open Tokens; the module is finalized when it drops to 0.
	refs        int
	initialized bool
	// foreign: someone outside this package initialized the module, so it is
	// not ours to finalize.
	foreign bool
	logins  map[uint]*login
}

// login is the user login on one slot, shared by Tokens opened on it. Its
// session stays open for as long as one of them is open, which keeps the
// login alive (closing a token's last session logs the user out).
type login struct {
	refs    int
	session p11.SessionHandle
	pinMAC  []byte
}

var registry = struct {
	sync.Mutex
	modules map[string]*module
}{modules: map[string]*module{}}

// pinMACKey lets a second Open of an already logged-in token compare its PIN
// with the one that logged in, without keeping the PIN.
var pinMACKey = func() []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		panic(err)
	}
	return k
}()

func pinMAC(pin string) []byte {
	m := hmac.New(sha256.New, pinMACKey)
	m.Write([]byte(pin))
	return m.Sum(nil)
}

// Token is a logged-in PKCS#11 token. Its methods are safe for concurrent
// use; each operation runs on a session of its own from a small pool.
type Token struct {
	mod   *module
	slot  uint
	label string
	uri   URI // PIN stripped

	mu     sync.Mutex
	cond   *sync.Cond
	idle   []p11.SessionHandle
	open   int // pool sessions, idle or in use
	closed bool

	// keyMu serialises find-or-create of keys, so two goroutines calling
	// Sealer(label, true) create one key, not two.
	keyMu sync.Mutex
}

// Open loads the module named by uri's module-path, finds the token the uri
// selects (by label, serial and/or slot id — all given must match), and logs
// in as the user with the uri's PIN. Close the Token when done.
//
// Errors wrap ErrInvalidURI, ErrModuleNotFound, ErrTokenNotFound,
// ErrPINIncorrect, ErrPINLocked or ErrToken, name the module, token and
// PKCS#11 return value, and never contain the PIN.
func Open(uri string) (*Token, error) {
	u, err := ParseURI(uri)
	if err != nil {
		return nil, err
	}
	if u.ModulePath == "" {
		return nil, classErrorf(ErrModuleNotFound, nil, "uri names no module-path; add module-path=/usr/lib/softhsm/libsofthsm2.so (SoftHSM: apt-get install softhsm2) or your HSM vendor's module")
	}
	pin, err := u.PIN()
	if err != nil {
		return nil, err
	}

	registry.Lock()
	defer registry.Unlock()
	mod, err := acquireModule(u.ModulePath)
	if err != nil {
		return nil, err
	}
	t, err := loginToken(mod, u, pin)
	if err != nil {
		releaseModule(mod)
		return nil, err
	}
	return t, nil
}

// acquireModule loads and initializes path if needed and takes a reference.
// Called with registry held.
func acquireModule(path string) (*module, error) {
	mod := registry.modules[path]
	if mod == nil {
		if strings.ContainsRune(path, '/') {
			if _, err := os.Stat(path); err != nil {
				return nil, classErrorf(ErrModuleNotFound, nil, "module %q not found: install it (SoftHSM: apt-get install softhsm2) or fix module-path", path)
			}
		}
		ctx := p11.New(path)
		if ctx == nil {
			return nil, classErrorf(ErrModuleNotFound, nil, "module %q could not be loaded (dlopen or C_GetFunctionList failed): not a PKCS#11 library, or built for another architecture; for SoftHSM: apt-get install softhsm2", path)
		}
		// The library stays loaded for the life of the process: unloading
		// SoftHSM (and the OpenSSL it links) is not safe, and reloading
		// gains nothing.
		mod = &module{path: path, ctx: ctx, logins: map[uint]*login{}}
		registry.modules[path] = mod
	}
	if !mod.initialized {
		err := mod.ctx.Initialize()
		switch {
		case err == nil:
			mod.foreign = false
		case errors.Is(err, p11.Error(p11.CKR_CRYPTOKI_ALREADY_INITIALIZED)):
			mod.foreign = true
		default:
			return nil, classErrorf(ErrModuleNotFound, call("C_Initialize", err), "module %q failed to initialize (SoftHSM: check that SOFTHSM2_CONF names a readable config)", path)
		}
		mod.initialized = true
	}
	mod.refs++
	return mod, nil
}

// releaseModule drops a reference and finalizes the module at zero, so the
// next Open re-reads its configuration and sees tokens created since.
// Called with registry held.
func releaseModule(mod *module) error {
	mod.refs--
	if mod.refs > 0 || !mod.initialized {
		return nil
	}
	mod.initialized = false
	if mod.foreign {
		return nil
	}
	if err := mod.ctx.Finalize(); err != nil {
		return classErrorf(ErrToken, call("C_Finalize", err), "module %q", mod.path)
	}
	return nil
}

// loginToken finds the slot and logs in. Called with registry held.
func loginToken(mod *module, u *URI, pin string) (*Token, error) {
	slot, label, err := findSlot(mod, u)
	if err != nil {
		return nil, err
	}
	mac := pinMAC(pin)
	if l := mod.logins[slot]; l != nil {
		if !hmac.Equal(l.pinMAC, mac) {
			return nil, classErrorf(ErrPINIncorrect, nil, "wrong PIN for token %q: it is already open in this process under a different PIN", label)
		}
		l.refs++
	} else {
		sh, err := mod.ctx.OpenSession(slot, p11.CKF_SERIAL_SESSION|p11.CKF_RW_SESSION)
		if err != nil {
			return nil, classErrorf(ErrTokenNotFound, call("C_OpenSession", err), "token %q", label)
		}
		if err := mod.ctx.Login(sh, p11.CKU_USER, pin); err != nil {
			mod.ctx.CloseSession(sh)
			return nil, loginError(label, err)
		}
		mod.logins[slot] = &login{refs: 1, session: sh, pinMAC: mac}
	}
	v := *u
	v.pinValue = ""
	t := &Token{mod: mod, slot: slot, label: label, uri: v}
	t.cond = sync.NewCond(&t.mu)
	return t, nil
}

func loginError(label string, err error) error {
	c := call("C_Login", err)
	switch {
	case errors.Is(err, p11.Error(p11.CKR_PIN_INCORRECT)), errors.Is(err, p11.Error(p11.CKR_PIN_LEN_RANGE)):
		return classErrorf(ErrPINIncorrect, c, "wrong PIN for token %q; check the uri's pin-source or pin-value", label)
	case errors.Is(err, p11.Error(p11.CKR_PIN_LOCKED)):
		return classErrorf(ErrPINLocked, c, "PIN of token %q is locked after too many wrong PINs; the token's security officer must reset it", label)
	case errors.Is(err, p11.Error(p11.CKR_PIN_EXPIRED)):
		return classErrorf(ErrPINLocked, c, "PIN of token %q has expired; set a new one", label)
	case errors.Is(err, p11.Error(p11.CKR_USER_ALREADY_LOGGED_IN)):
		// Someone else in this process logged in, so the PIN was not checked.
		return classErrorf(ErrPINIncorrect, c, "token %q is already logged in by other code in this process; cannot verify the PIN", label)
	case errors.Is(err, p11.Error(p11.CKR_USER_PIN_NOT_INITIALIZED)):
		return classErrorf(ErrPINIncorrect, c, "token %q has no user PIN; initialise it (SoftHSM: softhsm2-util --init-token … --pin …)", label)
	}
	return classErrorf(ErrToken, c, "login to token %q failed", label)
}

// findSlot returns the one initialised token matching every selector in u.
func findSlot(mod *module, u *URI) (uint, string, error) {
	slots, err := mod.ctx.GetSlotList(true)
	if err != nil {
		return 0, "", classErrorf(ErrTokenNotFound, call("C_GetSlotList", err), "module %q", mod.path)
	}
	type found struct {
		slot          uint
		label, serial string
	}
	var all, match []found
	for _, s := range slots {
		ti, err := mod.ctx.GetTokenInfo(s)
		if err != nil || ti.Flags&p11.CKF_TOKEN_INITIALIZED == 0 {
			continue
		}
		f := found{s, ti.Label, ti.SerialNumber}
		all = append(all, f)
		if (u.Token == "" || u.Token == ti.Label) && (u.Serial == "" || u.Serial == ti.SerialNumber) && (!u.HasSlotID || u.SlotID == s) {
			match = append(match, f)
		}
	}
	switch len(match) {
	case 1:
		return match[0].slot, match[0].label, nil
	case 0:
		slices.SortFunc(all, func(a, b found) int { return strings.Compare(a.label, b.label) })
		var present []string
		for _, f := range all {
			present = append(present, fmt.Sprintf("%q (serial %s)", f.label, f.serial))
		}
		have := "no initialised tokens"
		if len(present) > 0 {
			have = "tokens present: " + strings.Join(present, ", ")
		}
		hint := " (SoftHSM: create it with softhsm2-util --init-token --free --label <label>, and check SOFTHSM2_CONF)"
		if mod.refs > 1 {
			hint = " (the module was loaded earlier in this process; tokens created since then appear only after every open token of this module is closed)"
		}
		return 0, "", classErrorf(ErrTokenNotFound, nil, "%s not found in module %q; %s%s", selector(u), mod.path, have, hint)
	default:
		var labels []string
		for _, f := range match {
			labels = append(labels, fmt.Sprintf("%q (serial %s)", f.label, f.serial))
		}
		return 0, "", classErrorf(ErrTokenNotFound, nil, "%s matches %d tokens in module %q: %s; add serial= to choose one", selector(u), len(match), mod.path, strings.Join(labels, ", "))
	}
}

func selector(u *URI) string {
	var s []string
	if u.Token != "" {
		s = append(s, fmt.Sprintf("label %q", u.Token))
	}
	if u.Serial != "" {
		s = append(s, fmt.Sprintf("serial %q", u.Serial))
	}
	if u.HasSlotID {
		s = append(s, fmt.Sprintf("slot-id %d", u.SlotID))
	}
	return "token with " + strings.Join(s, " and ")
}

// Label is the token's label.
func (t *Token) Label() string { return t.label }

// URI returns the uri the token was opened with, without its PIN. Its Object
// field, when set, is the conventional label of the sealing key.
func (t *Token) URI() URI { return t.uri }

// session takes a session from the pool, opening one if the pool is below
// maxSessions, else waiting for one to be returned.
func (t *Token) session() (p11.SessionHandle, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for {
		if t.closed {
			return 0, classErrorf(ErrClosed, nil, "token %q is closed", t.label)
		}
		if n := len(t.idle); n > 0 {
			sh := t.idle[n-1]
			t.idle = t.idle[:n-1]
			return sh, nil
		}
		if t.open < maxSessions {
			t.open++
			t.mu.Unlock()
			sh, err := t.mod.ctx.OpenSession(t.slot, p11.CKF_SERIAL_SESSION|p11.CKF_RW_SESSION)
			t.mu.Lock()
			if err != nil {
				t.open--
				t.cond.Broadcast()
				return 0, classErrorf(ErrToken, call("C_OpenSession", err), "token %q", t.label)
			}
			return sh, nil
		}
		t.cond.Wait()
	}
}

// release returns sh to the pool. After a failed operation the session is
// closed instead: a failure may leave an operation active on it.
func (t *Token) release(sh p11.SessionHandle, failed bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if failed || t.closed {
		t.mod.ctx.CloseSession(sh)
		t.open--
	} else {
		t.idle = append(t.idle, sh)
	}
	t.cond.Broadcast()
}

// do runs fn on a pooled session.
func (t *Token) do(fn func(sh p11.SessionHandle) error) error {
	sh, err := t.session()
	if err != nil {
		return err
	}
	err = fn(sh)
	t.release(sh, err != nil)
	return err
}

// randomChunk bounds one C_GenerateRandom call.
const randomChunk = 4096

// Read fills p with random bytes from the token's C_GenerateRandom. It
// returns len(p), nil or an error; it never returns a short read without an
// error. Use it mixed with the OS RNG, never alone (DESIGN.md).
func (t *Token) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n := 0
	err := t.do(func(sh p11.SessionHandle) error {
		for n < len(p) {
			b, err := t.mod.ctx.GenerateRandom(sh, min(len(p)-n, randomChunk))
			if err != nil {
				return classErrorf(ErrToken, call("C_GenerateRandom", err), "random from token %q", t.label)
			}
			n += copy(p[n:], b)
		}
		return nil
	})
	return n, err
}

// Close waits for operations in flight, closes the token's sessions, logs
// out (when no other Token in the process shares the login) and finalizes
// the module (when no other Token uses it). Close is idempotent. Sealers of
// a closed Token fail with ErrClosed.
func (t *Token) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.cond.Broadcast()
	for t.open > len(t.idle) {
		t.cond.Wait()
	}
	for _, sh := range t.idle {
		t.mod.ctx.CloseSession(sh)
	}
	t.open -= len(t.idle)
	t.idle = nil
	t.mu.Unlock()

	registry.Lock()
	defer registry.Unlock()
	var errs []error
	if l := t.mod.logins[t.slot]; l != nil {
		l.refs--
		if l.refs == 0 {
			delete(t.mod.logins, t.slot)
			if err := t.mod.ctx.Logout(l.session); err != nil {
				errs = append(errs, classErrorf(ErrToken, call("C_Logout", err), "token %q", t.label))
			}
			if err := t.mod.ctx.CloseSession(l.session); err != nil {
				errs = append(errs, classErrorf(ErrToken, call("C_CloseSession", err), "token %q", t.label))
			}
		}
	}
	if err := releaseModule(t.mod); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// ckrError is a PKCS#11 function's non-OK return value.
type ckrError struct {
	fn string
	rv p11.Error
}

func (e *ckrError) Error() string { return e.fn + " returned " + ckrName(e.rv) }
func (e *ckrError) Unwrap() error { return e.rv }

func call(fn string, err error) error {
	if err == nil {
		return nil
	}
	var rv p11.Error
	if errors.As(err, &rv) {
		return &ckrError{fn: fn, rv: rv}
	}
	return fmt.Errorf("%s: %w", fn, err)
}

// ckrName is the CKR_ name of rv; miekg/pkcs11 lacks some v2.40 names.
func ckrName(rv p11.Error) string {
	if _, name, ok := strings.Cut(rv.Error(), ": "); ok {
		if _, name, ok = strings.Cut(name, ": "); ok && name != "" {
			return name
		}
	}
	switch uint(rv) {
	case p11.CKR_ACTION_PROHIBITED:
		return "CKR_ACTION_PROHIBITED"
	case p11.CKR_PIN_TOO_WEAK:
		return "CKR_PIN_TOO_WEAK"
	}
	return fmt.Sprintf("CKR 0x%X", uint(rv))
}
