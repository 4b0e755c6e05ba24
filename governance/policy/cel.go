package policy

import (
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/ext"

	"github.com/sealsign/sealsign/governance/tx"
)

// MaxConditionCost is the CEL runtime cost budget of one evaluation of one
// rule condition (cel.CostLimit). The budget, not a wall-clock timeout,
// bounds evaluation because every party must reach the same verdict: cost is
// deterministic, time is not. A condition that exceeds it fails the rule
// with CostExceeded (a deny rule then counts as matching).
const MaxConditionCost = 100_000

// request and transfer are the CEL view of an Input: the variable `request`
// is a policy.request. Field names come from the cel tags. Append fields only.
type request struct {
	Kind         string     `cel:"kind"`
	Chain        string     `cel:"chain"`
	Method       string     `cel:"method"`
	KeyID        string     `cel:"key_id"`
	KeyAlgorithm string     `cel:"key_algorithm"`
	ClientID     string     `cel:"client_id"`
	Initiator    string     `cel:"initiator"`
	Transfers    []transfer `cel:"transfers"`
	Fee          units      `cel:"fee"`
	PayloadHash  string     `cel:"payload_hash"`
	DigestCount  int64      `cel:"digest_count"`
	KeyPath      string     `cel:"key_path"`
}

type transfer struct {
	Action string `cel:"action"`
	Asset  string `cel:"asset"`
	To     string `cel:"to"`
	Amount units  `cel:"amount"`
	Change bool   `cel:"change"`
}

var (
	envOnce sync.Once
	celEnv  *cel.Env
	envErr  error
)

// environment is the one CEL environment every condition compiles in. It has
// the standard library (pure functions only; CEL has no I/O and no clock —
// the only time a condition sees is the `now` variable), the units type and
// its functions, and nothing else.
func environment() (*cel.Env, error) {
	envOnce.Do(func() {
		u := unitsType
		celEnv, envErr = cel.NewEnv(
			ext.NativeTypes(reflect.TypeFor[request](), ext.ParseStructTags(true)),
			cel.Variable("request", cel.ObjectType("policy.request")),
			cel.Variable("now", cel.TimestampType),
			cel.EnableMacroCallTracking(),
			cel.DefaultUTCTimeZone(true),
			cel.ParserExpressionSizeLimit(MaxConditionLen),
			cel.ParserRecursionLimit(64),
			cel.Function("units",
				cel.Overload("units_string", []*cel.Type{cel.StringType}, u, cel.UnaryBinding(unitsFromString)),
				cel.Overload("units_int", []*cel.Type{cel.IntType}, u, cel.UnaryBinding(unitsFromInt)),
				cel.Overload("units_uint", []*cel.Type{cel.UintType}, u, cel.UnaryBinding(unitsFromInt)),
			),
			// Declarations only: see unitsType.
			cel.Function(operators.Less, cel.Overload("less_units_units", []*cel.Type{u, u}, cel.BoolType)),
			cel.Function(operators.LessEquals, cel.Overload("less_equals_units_units", []*cel.Type{u, u}, cel.BoolType)),
			cel.Function(operators.Greater, cel.Overload("greater_units_units", []*cel.Type{u, u}, cel.BoolType)),
			cel.Function(operators.GreaterEquals, cel.Overload("greater_equals_units_units", []*cel.Type{u, u}, cel.BoolType)),
			cel.Function(operators.Add, cel.Overload("add_units_units", []*cel.Type{u, u}, u)),
			cel.Function("sum", cel.MemberOverload("list_units_sum", []*cel.Type{cel.ListType(u)}, u,
				cel.UnaryBinding(unitsSum))),
			cel.Function("string", cel.Overload("string_units", []*cel.Type{u}, cel.StringType,
				cel.UnaryBinding(unitsToString))),
		)
	})
	return celEnv, envErr
}

// program is one compiled, checked boolean expression.
type program struct {
	src string
	prg cel.Program
}

// clause is one top-level conjunct of a condition, kept as its own program
// so that a false condition can name the first conjunct that failed.
type compiledCondition struct {
	whole   program
	clauses []program // nil when the condition has a single conjunct
}

var (
	evmLiteral = regexp.MustCompile(`^0[xX][0-9a-fA-F]{40}$`)
	bechPrefix = regexp.MustCompile(`^(?i)(bc1|tb1|bcrt1)`)
)

// compileCondition parses, type-checks (to bool), lints and plans src.
func compileCondition(src string) (*compiledCondition, error) {
	env, err := environment()
	if err != nil {
		return nil, fmt.Errorf("cel environment: %v", err)
	}
	checked, err := compileBool(env, src)
	if err != nil {
		return nil, err
	}
	if err := lintLiterals(checked.NativeRep()); err != nil {
		return nil, err
	}
	prg, err := plan(env, checked)
	if err != nil {
		return nil, err
	}
	c := &compiledCondition{whole: program{src: src, prg: prg}}
	conj := conjuncts(checked.NativeRep().Expr(), nil)
	if len(conj) > 1 {
		info := checked.NativeRep().SourceInfo()
		for _, e := range conj {
			text, err := cel.ExprToString(e, info)
			if err != nil {
				return nil, fmt.Errorf("unparse clause: %v", err)
			}
			// The unparser wraps long lines; a clause is reported on one.
			text = strings.ReplaceAll(text, "\n", " ")
			sub, err := compileBool(env, text)
			if err != nil {
				return nil, fmt.Errorf("clause %q: %v", text, err)
			}
			p, err := plan(env, sub)
			if err != nil {
				return nil, err
			}
			c.clauses = append(c.clauses, program{src: text, prg: p})
		}
	}
	return c, nil
}

func compileBool(env *cel.Env, src string) (*cel.Ast, error) {
	checked, iss := env.Compile(src)
	if iss != nil && iss.Err() != nil {
		return nil, errors.New(strings.ReplaceAll(iss.Err().Error(), "\n", " "))
	}
	if !checked.OutputType().IsExactType(cel.BoolType) {
		return nil, fmt.Errorf("condition is of type %s, want bool", checked.OutputType())
	}
	return checked, nil
}

func plan(env *cel.Env, a *cel.Ast) (cel.Program, error) {
	prg, err := env.Program(a,
		cel.CostLimit(MaxConditionCost),
		cel.EvalOptions(cel.OptOptimize),
	)
	if err != nil {
		return nil, fmt.Errorf("plan: %v", err)
	}
	return prg, nil
}

// conjuncts flattens the top-level && tree of e, left to right.
func conjuncts(e ast.Expr, out []ast.Expr) []ast.Expr {
	if e.Kind() == ast.CallKind && e.AsCall().FunctionName() == operators.LogicalAnd && len(e.AsCall().Args()) == 2 {
		out = conjuncts(e.AsCall().Args()[0], out)
		return conjuncts(e.AsCall().Args()[1], out)
	}
	return append(out, e)
}

// lintLiterals refuses literals that could never match what the decoders
// produce, so a typo in an allowlist fails at validation, not silently at
// signing time:
//   - a 0x-hex 20-byte address that is not in its EIP-55 form (the decoders
//     give EVM destinations EIP-55 checksummed, so an all-lowercase or
//     mis-checksummed allowlist entry would never match; the error gives the
//     right spelling);
//   - a bech32 address with upper-case letters (decoders give lower case);
//   - an "erc20:" asset with upper-case hex (assets are lower case);
//   - units(...) of a literal that is not a valid amount.
func lintLiterals(a *ast.AST) error {
	var errs []string
	for _, n := range ast.MatchDescendants(ast.NavigateAST(a), ast.KindMatcher(ast.LiteralKind)) {
		s, ok := n.AsLiteral().(types.String)
		if !ok {
			continue
		}
		str := string(s)
		switch {
		case evmLiteral.MatchString(str):
			want := common.HexToAddress(str).Hex()
			if str != want {
				errs = append(errs, fmt.Sprintf("EVM address %q is not EIP-55 checksummed: write %q", str, want))
			}
		case bechPrefix.MatchString(str) && str != strings.ToLower(str):
			errs = append(errs, fmt.Sprintf("bech32 address %q must be lower case: write %q", str, strings.ToLower(str)))
		case strings.HasPrefix(strings.ToLower(str), "erc20:") && str != strings.ToLower(str):
			errs = append(errs, fmt.Sprintf("asset %q must be lower case: write %q", str, strings.ToLower(str)))
		}
	}
	for _, n := range ast.MatchDescendants(ast.NavigateAST(a), ast.FunctionMatcher("units")) {
		args := n.AsCall().Args()
		if len(args) != 1 || args[0].Kind() != ast.LiteralKind {
			continue
		}
		if r := unitsFromString(args[0].AsLiteral()); types.IsError(r) {
			if _, isStr := args[0].AsLiteral().(types.String); isStr {
				errs = append(errs, fmt.Sprint(r))
			}
		}
		if r := unitsFromInt(args[0].AsLiteral()); types.IsError(r) {
			if _, isInt := args[0].AsLiteral().(types.Int); isInt {
				errs = append(errs, fmt.Sprint(r))
			}
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// evalResult is the outcome of one boolean program.
type evalResult struct {
	value bool
	err   error
	cost  bool // err is the cost limit
}

func (p program) eval(act map[string]any) (res evalResult) {
	// cel-go is a large library evaluating attacker-influenced values
	// (decoded transactions); a panic in it must fail the rule, not the
	// enclave.
	defer func() {
		if r := recover(); r != nil {
			res = evalResult{err: fmt.Errorf("evaluation panicked: %v", r)}
		}
	}()
	out, _, err := p.prg.Eval(act)
	if err != nil {
		return evalResult{err: err, cost: strings.Contains(err.Error(), "cost limit exceeded")}
	}
	if types.IsError(out) {
		return evalResult{err: fmt.Errorf("%v", out)}
	}
	b, ok := out.(types.Bool)
	if !ok {
		return evalResult{err: fmt.Errorf("condition produced %s, want bool", out.Type().TypeName())}
	}
	return evalResult{value: bool(b)}
}

// failingClause returns the first top-level conjunct that is false or
// fails, and its result; the whole condition when it has one conjunct.
func (c *compiledCondition) failingClause(act map[string]any) (string, evalResult) {
	for _, cl := range c.clauses {
		r := cl.eval(act)
		if r.err != nil || !r.value {
			return cl.src, r
		}
	}
	return c.whole.src, evalResult{}
}

// activation builds the CEL variables for an input. It normalises what the
// decoders should already have normalised (EIP-55 destinations, lower-case
// erc20 assets and bech32 addresses), so a decoder slip cannot turn an
// allowlisted address into a non-matching one or the reverse.
func activation(in *Input) (map[string]any, error) {
	s := in.Summary
	r := &request{
		Kind:         string(s.Kind),
		Chain:        s.Chain,
		Method:       s.Method,
		KeyID:        in.KeyID,
		KeyAlgorithm: in.KeyAlgorithm,
		KeyPath:      in.KeyPath,
		ClientID:     in.ClientID,
		Initiator:    in.Initiator,
		PayloadHash:  hex.EncodeToString(s.PayloadHash[:]),
		DigestCount:  int64(len(s.Digests)),
		Transfers:    make([]transfer, 0, len(s.Transfers)),
	}
	if s.Fee != nil {
		if s.Fee.Sign() < 0 {
			return nil, fmt.Errorf("fee %s is negative", s.Fee)
		}
		r.Fee = newUnits(s.Fee)
	}
	for i, t := range s.Transfers {
		if t.Amount == nil {
			return nil, fmt.Errorf("transfer %d has no amount", i)
		}
		if t.Amount.Sign() < 0 {
			return nil, fmt.Errorf("transfer %d amount %s is negative", i, t.Amount)
		}
		r.Transfers = append(r.Transfers, transfer{
			Action: string(t.Action),
			Asset:  normalAsset(t.Asset),
			To:     normalAddress(s.Kind, t.To),
			Amount: newUnits(t.Amount),
			Change: t.Change,
		})
	}
	now := in.Now
	if now.IsZero() {
		return nil, errors.New("input has no time (Input.Now is zero)")
	}
	return map[string]any{"request": r, "now": now.UTC().Truncate(time.Second)}, nil
}

func normalAsset(a string) string {
	if strings.HasPrefix(strings.ToLower(a), "erc20:") {
		return strings.ToLower(a)
	}
	return a
}

func normalAddress(k tx.Kind, a string) string {
	if k == tx.KindEVM && evmLiteral.MatchString(a) {
		return common.HexToAddress(a).Hex()
	}
	if bechPrefix.MatchString(a) {
		return strings.ToLower(a)
	}
	return a
}

var _ ref.Val = units{}
