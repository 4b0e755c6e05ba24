package policy

import (
	"fmt"
	"math/big"
	"reflect"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
)

// maxUnitsDigits bounds a decimal amount literal: 2^256 has 78 digits, so
// every EVM amount fits, and parsing stays constant-time.
const maxUnitsDigits = 80

// unitsType is the CEL type of an exact, non-negative amount in an asset's
// base units (wei, token units, satoshi). CEL's int and uint stop at 2^64 and
// double is inexact, so amounts never use them.
//
// The standard library binds <, <=, >, >= and + once for all types, by
// dispatching to the traits.Comparer and traits.Adder of the left operand;
// so units implements those traits and the environment only declares the
// (units, units) overloads for the type checker.
var unitsType = types.NewOpaqueType("units").WithTraits(traits.ComparerType | traits.AdderType)

// units is the CEL value of an amount. The zero value is 0. It implements
// ref.Val with value receivers so that cel-go's native struct support can
// expose fields of this type (request.fee, transfer.amount) directly.
type units struct{ v *big.Int }

func newUnits(v *big.Int) units { return units{v: v} }

func (u units) big() *big.Int {
	if u.v == nil {
		return new(big.Int)
	}
	return u.v
}

// parseUnits parses a base-10 amount: digits only, no sign, no spaces, no
// leading zeros (except "0" itself), at most maxUnitsDigits digits. The
// strictness means one amount has one spelling in a policy.
func parseUnits(s string) (*big.Int, error) {
	if s == "" {
		return nil, fmt.Errorf("amount is empty")
	}
	if len(s) > maxUnitsDigits {
		return nil, fmt.Errorf("amount has %d digits, more than the %d allowed", len(s), maxUnitsDigits)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return nil, fmt.Errorf("amount %q is not a non-negative decimal integer (digits only, in base units)", s)
		}
	}
	if len(s) > 1 && s[0] == '0' {
		return nil, fmt.Errorf("amount %q has a leading zero", s)
	}
	v, ok := new(big.Int).SetString(s, 10)
	if !ok {
		return nil, fmt.Errorf("amount %q is not a decimal integer", s)
	}
	return v, nil
}

// ConvertToNative implements ref.Val.
func (u units) ConvertToNative(t reflect.Type) (any, error) {
	switch t {
	case reflect.TypeFor[units]():
		return u, nil
	case reflect.TypeFor[*big.Int]():
		return new(big.Int).Set(u.big()), nil
	case reflect.TypeFor[string]():
		return u.big().String(), nil
	}
	return nil, fmt.Errorf("policy: cannot convert units to %v", t)
}

// ConvertToType implements ref.Val.
func (u units) ConvertToType(t ref.Type) ref.Val {
	switch t.TypeName() {
	case unitsType.TypeName():
		return u
	case types.StringType.TypeName():
		return types.String(u.big().String())
	case types.TypeType.TypeName():
		return unitsType
	}
	return types.NewErr("type conversion error from units to %q", t.TypeName())
}

// Equal implements ref.Val; units are equal only to units of the same value.
func (u units) Equal(other ref.Val) ref.Val {
	o, ok := other.(units)
	if !ok {
		return types.False
	}
	return types.Bool(u.big().Cmp(o.big()) == 0)
}

// Type implements ref.Val.
func (u units) Type() ref.Type { return unitsType }

// Value implements ref.Val.
func (u units) Value() any { return u.big() }

func unitsFromString(v ref.Val) ref.Val {
	s, ok := v.(types.String)
	if !ok {
		return types.MaybeNoSuchOverloadErr(v)
	}
	n, err := parseUnits(string(s))
	if err != nil {
		return types.NewErr("units: %v", err)
	}
	return units{v: n}
}

func unitsFromInt(v ref.Val) ref.Val {
	switch n := v.(type) {
	case types.Int:
		if n < 0 {
			return types.NewErr("units: amount %d is negative", int64(n))
		}
		return units{v: big.NewInt(int64(n))}
	case types.Uint:
		return units{v: new(big.Int).SetUint64(uint64(n))}
	}
	return types.MaybeNoSuchOverloadErr(v)
}

// Compare implements traits.Comparer.
func (u units) Compare(other ref.Val) ref.Val {
	o, ok := other.(units)
	if !ok {
		return types.MaybeNoSuchOverloadErr(other)
	}
	return types.Int(u.big().Cmp(o.big()))
}

// Add implements traits.Adder.
func (u units) Add(other ref.Val) ref.Val {
	o, ok := other.(units)
	if !ok {
		return types.MaybeNoSuchOverloadErr(other)
	}
	return units{v: new(big.Int).Add(u.big(), o.big())}
}

func unitsSum(v ref.Val) ref.Val {
	l, ok := v.(interface {
		Size() ref.Val
		Get(ref.Val) ref.Val
	})
	if !ok {
		return types.MaybeNoSuchOverloadErr(v)
	}
	n, ok := l.Size().(types.Int)
	if !ok {
		return types.MaybeNoSuchOverloadErr(v)
	}
	sum := new(big.Int)
	for i := types.Int(0); i < n; i++ {
		e, ok := l.Get(i).(units)
		if !ok {
			return types.NewErr("sum: list element %d is not units", int64(i))
		}
		sum.Add(sum, e.big())
	}
	return units{v: sum}
}

func unitsToString(v ref.Val) ref.Val {
	u, ok := v.(units)
	if !ok {
		return types.MaybeNoSuchOverloadErr(v)
	}
	return types.String(u.big().String())
}
