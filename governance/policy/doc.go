// Package policy is the policy engine every enclave runs before it signs:
// the policy document admins author and sign, its acceptance (admin quorum,
// rollback protection, time lock), and the evaluation of a decoded request
// against it, velocity state included.
//
// The semantics borrow from Turnkey (typed expression conditions; explicit
// deny beats allow; implicit deny) and Dfns (velocity limits, approval
// groups with quorums, any rejection aborts, fail closed when a condition
// cannot be evaluated).
//
// # Evaluation
//
// Policy.Evaluate(in, vel) returns a Decision with Outcome Allow, Deny or
// NeedsApproval, computed as follows; the first step that decides wins.
//
//  1. The policy must be validated (InvalidPolicy), be for in.ClusterID
//     (WrongCluster) and be in effect: in.Now ≥ NotBefore (NotYetEffective).
//     The input must be well formed (InvalidInput: a nil or negative amount
//     or fee, a zero Now). in.Rejected denies (Rejected): any rejection by
//     an approver aborts the request.
//  2. Every deny rule is evaluated. Each one whose condition is true — or
//     cannot be evaluated (ConditionError, CostExceeded): fail closed — is
//     listed, and if there is any the outcome is Deny (DenyRuleMatched).
//  3. Every allow rule is evaluated. One whose condition is false or fails
//     is not a candidate; its reason is its failing clause: the first
//     top-level && conjunct of the condition (from the checked AST) that is
//     false or fails, as normalised source text (ConditionFalse,
//     ConditionError, CostExceeded).
//  4. A candidate whose velocity limits this request would exceed fails
//     (VelocityExceeded: rule, limit, scope, window, used + this request
//     against the max; VelocityUnavailable when vel is nil).
//  5. A candidate whose approvals are unmet is pending (ApprovalsMissing,
//     with Decision.Pending saying what each group still needs).
//  6. Outcome: Allow if any candidate passed both, naming the first such
//     rule in policy order (RuleID); else NeedsApproval if any candidate is
//     pending; else Deny with NoAllowRule followed by every allow rule's
//     reason. Rule order never changes the outcome.
//
// Evaluation is deterministic: the same policy, input and velocity state
// give the same Decision on every party. Decision.Digest lets parties
// compare verdicts (policy version, payload hash, outcome, allowing rule,
// the code/rule/limit of every reason).
//
// Approvals: an approver counts toward a group if it lists the group; each
// group counts distinct Owners (one person with two approver keys counts
// once); the initiator's Owner does not count unless AllowInitiator. An
// owner in several groups counts in each. Logic "and" needs every group's
// threshold, "or" any one. Verifying approval signatures is the caller's
// job: Input.Approvals are already verified.
//
// # Velocity
//
// A velocity limit of an allow rule caps what that rule may allow in a
// sliding window (Window seconds, up to 31 days) per scope value: per
// signing key, per initiating client key, or per destination address. A
// limit with Asset counts only non-change transfers of that asset (amount:
// their sum; count: one per request that has any); without Asset it counts
// every request once and has no amount (MaxAmount requires Asset, since
// base units of different assets do not add up). Transfers with Change set
// (Bitcoin outputs paying back to the key) never count. ERC-20 approvals
// count at their allowance. A request is within a limit when used + this
// request ≤ max, for count and amount.
//
// After an Allow the caller signs and then calls VelocityState.Record,
// which adds Decision.Charges: the request is charged to the limits of
// every allow rule whose condition matched, not only the rule that
// allowed, so a limit counts everything its rule covers. The state is
// keyed by rule id, limit id and scope value, not by policy version, so an
// update keeps the counts of unchanged ids. It is bounded (MaxVelocityEvents,
// MaxVelocityBuckets); when full, Evaluate fails closed with
// VelocityUnavailable. It seals deterministically (MarshalBinary).
//
// # Conditions (CEL)
//
// A condition is a CEL expression (github.com/google/cel-go) of type bool,
// at most MaxConditionLen bytes, evaluated within MaxConditionCost. It sees
// two variables:
//
//	request.kind           string  "evm", "btc-psbt", "raw-digest"
//	request.chain          string  CAIP-2: "eip155:1", "bip122:000000000019d6689c085ae165831e93"; "" for raw
//	request.method         string  "native", "erc20.transfer", "erc20.approve", "contract-call",
//	                               "contract-create", "psbt", "raw"
//	request.key_id         string  the threshold key asked to sign
//	request.key_algorithm  string
//	request.key_path       string  the BIP-32 child of the key that signs: "m" for the
//	                               key itself, "m/0/5" for a child (non-hardened only)
//	request.client_id      string  the initiating client key id
//	request.initiator      string  that key's owner
//	request.transfers      list    of transfer (below), change outputs included
//	request.fee            units   the most the payload can pay (0 for raw digests)
//	request.payload_hash   string  lower-case hex of tx.Summary.PayloadHash
//	request.digest_count   int     how many digests would be signed
//	now                    timestamp, Input.Now to the second (UTC)
//
//	transfer.action  string  "transfer" or "approve"
//	transfer.asset   string  "ETH", "BTC", "erc20:0x<lower-case contract>"
//	transfer.to      string  EIP-55 (EVM) or lower-case bech32 (Bitcoin)
//	transfer.amount  units   base units (wei, token units, satoshi)
//	transfer.change  bool    Bitcoin change back to the key
//
// Amounts are exact: they have the type units, an arbitrary-precision
// non-negative integer (wei exceeds 2^64; CEL's int and uint stop there and
// double is inexact). units compare with <, <=, >, >=, ==, != and add with
// +; units('123') and units(123) build one (digits only, no sign, no
// leading zero, no exponent; a bad literal fails validation, a bad runtime
// string fails the rule); list.sum() adds a list of units; string(u) gives
// the decimal. Comparing units with an int or double does not type-check.
//
//	request.transfers.all(t, t.amount < units('1000000000000000000'))           // each < 1 ETH
//	request.transfers.filter(t, !t.change).map(t, t.amount).sum() < units(10000000) // total < 0.1 BTC
//	request.fee <= units('10000000000000000')
//
// Address lists are plain CEL lists with in:
//
//	request.transfers.all(t, t.change || t.to in ['0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed', 'bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4'])
//
// EVM addresses compare case-sensitively in their EIP-55 form: the input
// normalises every EVM destination to EIP-55 (and bech32 to lower case,
// erc20 assets to lower case), and validation refuses any string literal
// that is a 20-byte 0x address not in EIP-55 form — with the right spelling
// in the error — as well as upper-case bech32 and erc20 literals. So a
// checksum/lowercase mismatch is caught when the policy is written, never
// silently at signing time.
//
// The environment has CEL's standard library only (pure functions: no I/O,
// no clock besides now) plus units. Raw digests have no transfers, so
// request.transfers.all(...) is vacuously true for them: a policy that
// allows raw signing must say so (request.method == 'raw'), and one that
// does not should deny it explicitly, as testdata/default-policy.json does.
//
// # Updates
//
// A new policy arrives as a SignedPolicy (the canonical encoding plus admin
// signatures under Domain). Accept requires a quorum of distinct admin
// owners, the cluster id, a higher Version (rollback and replay refused),
// a fresh IssuedAt, and NotBefore ≥ IssuedAt + the current policy's
// UpdateTimeLock. An accepted policy with NotBefore in the future denies
// with NotYetEffective if evaluated; Store keeps the current policy in
// force until then and swaps at NotBefore.
package policy
