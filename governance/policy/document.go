package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/sealsign/sealsign/governance/canon"
)

// Format is the policy document format this package reads and writes.
const Format = 1

// Limits on a policy document, checked by Validate.
const (
	MaxRules            = 256
	MaxConditionLen     = 4 << 10
	MaxDescriptionLen   = 1 << 10
	MaxVelocityPerRule  = 8
	MaxGroupsPerRule    = 16
	MaxGroupThreshold   = 100
	MinWindow           = 1
	MaxWindow           = 31 * 24 * 3600
	MaxLimitCount       = 8192 // bounded by MaxVelocityEvents: a count above it could never be reached
	MaxUpdateTimeLock   = 365 * 24 * 3600
	maxAssetLen         = 128
	maxPolicyJSONLength = canon.MaxSize
)

// Effects of a rule.
const (
	EffectAllow = "allow"
	EffectDeny  = "deny"
)

// Velocity scopes: what a limit's counter is kept per.
const (
	ScopeKey         = "key"         // per signing key (Input.KeyID)
	ScopeDestination = "destination" // per destination address (each non-change transfer's To)
	ScopeClient      = "client"      // per initiating client key (Input.ClientID)
)

// Approval logic across groups.
const (
	LogicAnd = "and" // every group must reach its threshold
	LogicOr  = "or"  // one group reaching its threshold suffices
)

var (
	idPattern    = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	groupPattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._@-]{0,63}$`)
)

// Policy is a signed-state document: the rules every enclave of a cluster
// evaluates. It is encoded with canon (integer keys) for signing and sealing,
// and authored as JSON (ParseJSON).
//
// Version 1. Append fields only; never change a field's meaning. A Policy is
// immutable once validated: Validate compiles the conditions and caches the
// programs, which later edits of the struct would not update.
type Policy struct {
	// Format is the document format, Format (1).
	Format uint64 `json:"format" cbor:"1,keyasint"`
	// ClusterID names the cluster the policy is for; Accept and Evaluate
	// refuse it on any other.
	ClusterID string `json:"cluster_id" cbor:"2,keyasint"`
	// Version increases with every accepted update (rollback protection).
	Version uint64 `json:"version" cbor:"3,keyasint"`
	// IssuedAt is when the admins issued it, unix seconds.
	IssuedAt int64 `json:"issued_at" cbor:"4,keyasint"`
	// NotBefore is when it takes effect, unix seconds (a time lock);
	// NotBefore >= IssuedAt.
	NotBefore int64 `json:"not_before" cbor:"5,keyasint"`
	// UpdateTimeLock, in seconds, is the notice this policy demands of its
	// successor: a later policy must have NotBefore >= its IssuedAt +
	// UpdateTimeLock, so changes can be announced before they bite.
	UpdateTimeLock uint64 `json:"update_time_lock" cbor:"6,keyasint"`
	// Rules, evaluated as described in the package documentation. Order
	// does not change the outcome; it only orders reasons and picks which
	// of several allowing rules is named.
	Rules []Rule `json:"rules" cbor:"7,keyasint"`

	compiled []*compiledCondition
}

// Rule is one allow or deny rule. Version 1; append fields only.
type Rule struct {
	// ID is unique within the policy: 1-64 of a-z, 0-9, '.', '_', '-',
	// starting with a letter or digit. Velocity counters are keyed by it.
	ID          string `json:"id" cbor:"1,keyasint"`
	Description string `json:"description,omitempty" cbor:"2,keyasint,omitempty"`
	// Effect is "allow" or "deny".
	Effect string `json:"effect" cbor:"3,keyasint"`
	// Condition is a CEL expression of type bool over `request` and `now`
	// (see the package documentation); "true" matches everything.
	Condition string `json:"condition" cbor:"4,keyasint"`
	// Velocity limits; allow rules only.
	Velocity []VelocityLimit `json:"velocity,omitempty" cbor:"5,keyasint,omitempty"`
	// Approvals required; allow rules only. Nil: none.
	Approvals *ApprovalRequirement `json:"approvals,omitempty" cbor:"6,keyasint,omitempty"`
}

// VelocityLimit caps what a rule may allow within a sliding window.
// Version 1; append fields only.
type VelocityLimit struct {
	// ID is unique within the rule (same pattern as Rule.ID).
	ID string `json:"id" cbor:"1,keyasint"`
	// Window is the sliding window in seconds, 1 s to 31 days.
	Window uint64 `json:"window" cbor:"2,keyasint"`
	// Scope is "key", "destination" or "client".
	Scope string `json:"scope" cbor:"3,keyasint"`
	// Asset, when set, restricts the limit to transfers of that asset
	// ("ETH", "BTC", "erc20:0x…" lower case). Required with MaxAmount,
	// because base units of different assets do not add up.
	Asset string `json:"asset,omitempty" cbor:"4,keyasint,omitempty"`
	// MaxAmount is the most, in the asset's base units (decimal string),
	// that the window may hold, this request included.
	MaxAmount string `json:"max_amount,omitempty" cbor:"5,keyasint,omitempty"`
	// MaxCount is the most requests the window may hold, this one
	// included. At least one of MaxAmount and MaxCount is set.
	MaxCount uint64 `json:"max_count,omitempty" cbor:"6,keyasint,omitempty"`
}

// ApprovalRequirement says who must approve before an allow rule allows.
// Version 1; append fields only.
type ApprovalRequirement struct {
	// Logic is "and" (every group) or "or" (any group).
	Logic  string           `json:"logic" cbor:"1,keyasint"`
	Groups []GroupThreshold `json:"groups" cbor:"2,keyasint"`
	// AllowInitiator lets an approver whose Owner is the initiator's Owner
	// count. It exists for single-operator test clusters; the default
	// (false) enforces four eyes.
	AllowInitiator bool `json:"allow_initiator,omitempty" cbor:"3,keyasint,omitempty"`
}

// GroupThreshold is "Threshold distinct owners from Group".
type GroupThreshold struct {
	Group     string `json:"group" cbor:"1,keyasint"`
	Threshold int    `json:"threshold" cbor:"2,keyasint"`
}

// ParseJSON reads an admin-authored policy: strict JSON (unknown fields and
// trailing data refused), then full validation including compiling every
// condition.
func ParseJSON(data []byte) (*Policy, error) {
	if len(data) > maxPolicyJSONLength {
		return nil, fmt.Errorf("policy: json is %d bytes, more than the %d allowed", len(data), maxPolicyJSONLength)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var p Policy
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("policy: json: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("policy: json: trailing data after the policy object")
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// DecodePolicy reads the canonical encoding (as signed and sealed) strictly
// and validates it.
func DecodePolicy(data []byte) (*Policy, error) {
	var p Policy
	if err := canon.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("policy: decode: %v", err)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// Encode returns the canonical encoding, the bytes admins sign. It
// validates first, so an invalid policy is never signed.
func (p *Policy) Encode() ([]byte, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	b, err := canon.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("policy: encode: %v", err)
	}
	if len(b) > canon.MaxSize {
		return nil, fmt.Errorf("policy: encoding is %d bytes, more than the %d allowed", len(b), canon.MaxSize)
	}
	return b, nil
}

// Validate checks every field and limit and compiles every condition
// (type-checked to bool, literals linted), caching the programs Evaluate
// runs. All problems are reported, not just the first.
func (p *Policy) Validate() error {
	var errs []string
	bad := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	if p.Format != Format {
		bad("format %d unsupported (want %d)", p.Format, Format)
	}
	if !groupPattern.MatchString(p.ClusterID) {
		bad("cluster_id %q invalid (want 1-64 of letters, digits, '.', '_', '@', '-')", p.ClusterID)
	}
	if p.Version == 0 {
		bad("version is 0 (want 1 or more)")
	}
	if p.IssuedAt <= 0 {
		bad("issued_at %d is not a unix time in seconds", p.IssuedAt)
	}
	if p.NotBefore < p.IssuedAt {
		bad("not_before %d is before issued_at %d", p.NotBefore, p.IssuedAt)
	}
	if p.UpdateTimeLock > MaxUpdateTimeLock {
		bad("update_time_lock %d s exceeds %d s (365 days)", p.UpdateTimeLock, MaxUpdateTimeLock)
	}
	if len(p.Rules) > MaxRules {
		bad("%d rules, more than the %d allowed", len(p.Rules), MaxRules)
		return fmt.Errorf("policy: invalid: %s", strings.Join(errs, "; "))
	}
	compiled := make([]*compiledCondition, len(p.Rules))
	seen := make(map[string]bool, len(p.Rules))
	for i := range p.Rules {
		r := &p.Rules[i]
		where := fmt.Sprintf("rule %d (%q)", i, r.ID)
		if !idPattern.MatchString(r.ID) {
			bad("%s: id invalid (want 1-64 of a-z, 0-9, '.', '_', '-')", where)
		} else if seen[r.ID] {
			bad("%s: id used twice", where)
		}
		seen[r.ID] = true
		if len(r.Description) > MaxDescriptionLen || !utf8.ValidString(r.Description) {
			bad("%s: description longer than %d bytes or not UTF-8", where, MaxDescriptionLen)
		}
		if r.Effect != EffectAllow && r.Effect != EffectDeny {
			bad("%s: effect %q invalid (want %q or %q)", where, r.Effect, EffectAllow, EffectDeny)
		}
		switch {
		case strings.TrimSpace(r.Condition) == "":
			bad("%s: condition is empty (write \"true\" to match everything)", where)
		case len(r.Condition) > MaxConditionLen:
			bad("%s: condition is %d bytes, more than the %d allowed", where, len(r.Condition), MaxConditionLen)
		default:
			c, err := compileCondition(r.Condition)
			if err != nil {
				bad("%s: condition: %v", where, err)
			}
			compiled[i] = c
		}
		if r.Effect == EffectDeny && (len(r.Velocity) > 0 || r.Approvals != nil) {
			bad("%s: a deny rule takes no velocity limits or approvals", where)
		}
		validateVelocity(where, r.Velocity, bad)
		if r.Approvals != nil {
			validateApprovals(where, r.Approvals, bad)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("policy: invalid: %s", strings.Join(errs, "; "))
	}
	p.compiled = compiled
	return nil
}

func validateVelocity(where string, ls []VelocityLimit, bad func(string, ...any)) {
	if len(ls) > MaxVelocityPerRule {
		bad("%s: %d velocity limits, more than the %d allowed", where, len(ls), MaxVelocityPerRule)
	}
	seen := map[string]bool{}
	for j, l := range ls {
		w := fmt.Sprintf("%s: velocity %d (%q)", where, j, l.ID)
		if !idPattern.MatchString(l.ID) {
			bad("%s: id invalid", w)
		} else if seen[l.ID] {
			bad("%s: id used twice", w)
		}
		seen[l.ID] = true
		if l.Window < MinWindow || l.Window > MaxWindow {
			bad("%s: window %d s outside %d..%d s (31 days)", w, l.Window, MinWindow, MaxWindow)
		}
		switch l.Scope {
		case ScopeKey, ScopeDestination, ScopeClient:
		default:
			bad("%s: scope %q invalid (want %q, %q or %q)", w, l.Scope, ScopeKey, ScopeDestination, ScopeClient)
		}
		if len(l.Asset) > maxAssetLen || (l.Asset != "" && l.Asset != normalAsset(l.Asset)) {
			bad("%s: asset %q invalid (at most %d bytes; erc20 assets lower case)", w, l.Asset, maxAssetLen)
		}
		if l.MaxAmount == "" && l.MaxCount == 0 {
			bad("%s: set max_amount, max_count or both", w)
		}
		if l.MaxAmount != "" {
			if _, err := parseUnits(l.MaxAmount); err != nil {
				bad("%s: max_amount: %v", w, err)
			}
			if l.Asset == "" {
				bad("%s: max_amount needs an asset (base units of different assets do not add up)", w)
			}
		}
		if l.MaxCount > MaxLimitCount {
			bad("%s: max_count %d exceeds %d", w, l.MaxCount, MaxLimitCount)
		}
	}
}

func validateApprovals(where string, a *ApprovalRequirement, bad func(string, ...any)) {
	if a.Logic != LogicAnd && a.Logic != LogicOr {
		bad("%s: approvals logic %q invalid (want %q or %q)", where, a.Logic, LogicAnd, LogicOr)
	}
	if len(a.Groups) == 0 || len(a.Groups) > MaxGroupsPerRule {
		bad("%s: approvals name %d groups (want 1..%d)", where, len(a.Groups), MaxGroupsPerRule)
	}
	seen := map[string]bool{}
	for _, g := range a.Groups {
		if !groupPattern.MatchString(g.Group) {
			bad("%s: approval group %q invalid", where, g.Group)
		} else if seen[g.Group] {
			bad("%s: approval group %q listed twice", where, g.Group)
		}
		seen[g.Group] = true
		if g.Threshold < 1 || g.Threshold > MaxGroupThreshold {
			bad("%s: approval group %q threshold %d outside 1..%d", where, g.Group, g.Threshold, MaxGroupThreshold)
		}
	}
}
