package session

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/big"
	"slices"
	"strings"

	"github.com/bnb-chain/tss-lib/v2/tss"
)

// Reshare turns a session into a tss-lib resharing (Config.Reshare): the
// key's old committee hands the same secret to a new committee with a new
// threshold. The session's parties (Proposal.Parties) are the union of
// both committees. A party in both runs two tss-lib parties — its old role
// and its new one — that talk to each other through this runner, and the
// roles use different tss-lib party keys (EpochPartyKey of the old and the
// new epoch), as tss-lib needs (notes/tss-lib.md §3.2: a node in both
// committees under one key breaks the protocol).
type Reshare struct {
	Old, New                   []string // sorted, unique
	OldThreshold, NewThreshold int
	OldEpoch, NewEpoch         uint64
	// BuildOld and BuildNew construct this party's role in each committee
	// it belongs to; the other may be nil.
	BuildOld, BuildNew ReshareBuild
}

// ReshareBuild constructs one role of a resharing. It must not start it.
type ReshareBuild func(params *tss.ReSharingParameters, out chan<- tss.Message) (tss.Party, <-chan any, error)

// ReshareOutput is what Run returns for a resharing: the tss-lib output of
// each role this party played (nil for a role it does not have).
type ReshareOutput struct {
	Old, New any
}

// EpochPartyKey is the tss-lib party key of a party in the committee of a
// key's epoch. Epoch 0 (keygen) keeps PartyKey; every reshare moves to the
// keys of the next epoch, so the old and the new committee never share a
// key even when they are the same parties.
func EpochPartyKey(id string, epoch uint64) *big.Int {
	if epoch == 0 {
		return PartyKey(id)
	}
	var e [8]byte
	binary.BigEndian.PutUint64(e[:], epoch)
	h := sha256.New()
	h.Write([]byte("sealsign/v1/party-key-epoch\x00" + id + "\x00"))
	h.Write(e[:])
	return new(big.Int).SetBytes(h.Sum(nil))
}

// route says who sends a resharing message type and to which committees.
type route struct {
	fromOld     bool
	toOld, toNe bool
}

// reshareRoutes is fixed by tss-lib's resharing (ecdsa and eddsa), keyed by
// message name without the package prefix. A message's committees come
// from its type, never from the sender's routing flags.
var reshareRoutes = map[string]route{
	"DGRound1Message":  {fromOld: true, toNe: true},
	"DGRound2Message1": {toNe: true},                // ecdsa: Paillier key and proofs
	"DGRound2Message2": {toOld: true},               // ecdsa: ack to the old committee
	"DGRound2Message":  {toOld: true},               // eddsa: ack to the old committee
	"DGRound3Message1": {fromOld: true, toNe: true}, // the new share, point to point
	"DGRound3Message2": {fromOld: true, toNe: true},
	"DGRound4Message1": {toNe: true}, // ecdsa: facproof, point to point
	"DGRound4Message2": {toOld: true, toNe: true},
	"DGRound4Message":  {toOld: true, toNe: true}, // eddsa
}

func (r *runner) reshareRoute(typ string) (route, error) {
	name := strings.TrimPrefix(typ, r.cfg.TypePrefix)
	rt, ok := reshareRoutes[name]
	if !ok || name == typ {
		return route{}, fmt.Errorf("session: %q is not a resharing message", typ)
	}
	return rt, nil
}

// role is one tss-lib party this runner drives.
type role struct {
	old    bool
	party  tss.Party
	result <-chan any
}

// startReshare builds this party's roles and returns them with the
// committee party ids.
func (r *runner) startReshare() error {
	rs := r.cfg.Reshare
	oldIDs := tss.SortPartyIDs(partyIDs(rs.Old, rs.OldEpoch))
	newIDs := tss.SortPartyIDs(partyIDs(rs.New, rs.NewEpoch))
	r.oldIDs, r.newIDs = map[string]*tss.PartyID{}, map[string]*tss.PartyID{}
	for _, id := range oldIDs {
		r.oldIDs[id.Id] = id
	}
	for _, id := range newIDs {
		r.newIDs[id.Id] = id
	}
	oldCtx, newCtx := tss.NewPeerContext(oldIDs), tss.NewPeerContext(newIDs)
	mk := func(me *tss.PartyID, build ReshareBuild, old bool) error {
		if build == nil {
			return fmt.Errorf("session: party %q is in the %s committee but has no builder for it", r.cfg.Me, committeeName(old))
		}
		params := tss.NewReSharingParameters(r.cfg.Curve, oldCtx, newCtx, me, len(rs.Old), rs.OldThreshold, len(rs.New), rs.NewThreshold)
		params.SetRand(r.cfg.Rand)
		params.SetPartialKeyRand(r.cfg.Rand)
		out := make(chan tss.Message, inboxSize)
		p, res, err := r.buildReshare(build, params, out)
		if err != nil {
			return err
		}
		ro := &role{old: old, party: p, result: res}
		if old {
			r.oldRole = ro
		} else {
			r.newRole = ro
		}
		r.pumps.Add(1)
		go r.pump(out, ro)
		return nil
	}
	if id, ok := r.oldIDs[r.cfg.Me]; ok {
		if err := mk(id, rs.BuildOld, true); err != nil {
			return err
		}
	}
	if id, ok := r.newIDs[r.cfg.Me]; ok {
		if err := mk(id, rs.BuildNew, false); err != nil {
			return err
		}
	}
	if r.oldRole == nil && r.newRole == nil {
		return fmt.Errorf("session: party %q is in neither committee", r.cfg.Me)
	}
	// One result once every role has finished.
	res := make(chan any, 1)
	oldRole, newRole := r.oldRole, r.newRole
	go func() {
		var out ReshareOutput
		for _, ro := range []*role{oldRole, newRole} {
			if ro == nil {
				continue
			}
			select {
			case v := <-ro.result:
				if ro.old {
					out.Old = v
				} else {
					out.New = v
				}
			case <-r.s.done:
				return
			}
		}
		res <- &out
	}()
	r.result = res
	// New roles first: they wait for the old committee's first round.
	for _, ro := range []*role{newRole, oldRole} {
		if ro == nil {
			continue
		}
		if terr := safeStart(ro.party); terr != nil {
			return r.tssError("start", terr)
		}
	}
	return nil
}

func committeeName(old bool) string {
	if old {
		return "old"
	}
	return "new"
}

func partyIDs(ids []string, epoch uint64) tss.UnSortedPartyIDs {
	var out tss.UnSortedPartyIDs
	for _, p := range ids {
		out = append(out, tss.NewPartyID(p, p, EpochPartyKey(p, epoch)))
	}
	return out
}

func (r *runner) buildReshare(build ReshareBuild, params *tss.ReSharingParameters, out chan<- tss.Message) (p tss.Party, res <-chan any, err error) {
	defer func() {
		if v := recover(); v != nil {
			p, res, err = nil, nil, fmt.Errorf("session: building the tss party failed: %v", v)
		}
	}()
	return build(params, out)
}

// sendReshare routes one message a local role emitted: to the other
// local role when it is a destination, and once to every other party
// (broadcasts go to every party of the session, so the echo check is the
// same as in any other session).
func (r *runner) sendReshare(from *role, m tss.Message) error {
	wire, routing, err := m.WireBytes()
	if err != nil {
		return fmt.Errorf("session: encode tss message: %w", err)
	}
	rt, err := r.reshareRoute(m.Type())
	if err != nil {
		return err
	}
	if rt.fromOld != from.old {
		return fmt.Errorf("session: our %s role emitted %s, which the other committee sends", committeeName(from.old), m.Type())
	}
	// Local: the other role, if the message is for its committee.
	if other := r.otherRole(from); other != nil && ((other.old && rt.toOld) || (!other.old && rt.toNe)) {
		addressed := routing.IsBroadcast
		for _, to := range routing.To {
			if to.Id == r.cfg.Me {
				addressed = true
			}
		}
		if addressed {
			select {
			case r.s.local <- localMsg{typ: m.Type(), wire: wire, broadcast: routing.IsBroadcast, fromOld: from.old}:
			case <-r.s.done:
				return ErrFinished
			}
		}
	}
	msg := &inner{Kind: kindTSS, Type: m.Type(), Broadcast: routing.IsBroadcast, Wire: wire}
	if routing.IsBroadcast {
		for _, p := range r.others {
			if err := r.sendTo(p, r.sid, msg); err != nil {
				return err
			}
		}
		return nil
	}
	var sent []string
	for _, to := range routing.To {
		if to.Id == r.cfg.Me || slices.Contains(sent, to.Id) {
			continue
		}
		sent = append(sent, to.Id)
		if err := r.sendTo(to.Id, r.sid, msg); err != nil {
			return err
		}
	}
	return nil
}

func (r *runner) otherRole(ro *role) *role {
	if ro.old {
		return r.newRole
	}
	return r.oldRole
}

// localMsg is a message one local role sends the other.
type localMsg struct {
	typ       string
	wire      []byte
	broadcast bool
	fromOld   bool
}

func (r *runner) deliverLocal(l localMsg) error {
	to := r.newRole
	from := r.oldIDs[r.cfg.Me]
	if !l.fromOld {
		to, from = r.oldRole, r.newIDs[r.cfg.Me]
	}
	if to == nil || from == nil {
		return fmt.Errorf("session: local %s message with no local recipient", l.typ)
	}
	return r.updateRole(to, from, l.typ, l.wire, l.broadcast)
}

// updateReshare hands a message from another party to this party's roles
// in the message type's destination committees. The sender must be in the
// committee that sends that type.
func (r *runner) updateReshare(from string, m *inner, broadcast bool) error {
	rt, err := r.reshareRoute(m.Type)
	if err != nil {
		return fmt.Errorf("%w (from %q)", err, from)
	}
	ids := r.newIDs
	if rt.fromOld {
		ids = r.oldIDs
	}
	sender, ok := ids[from]
	if !ok {
		return fmt.Errorf("session: party %q sent %s, which only the %s committee sends, and it is not in it", from, m.Type, committeeName(rt.fromOld))
	}
	delivered := false
	for _, ro := range []*role{r.oldRole, r.newRole} {
		if ro == nil || (ro.old && !rt.toOld) || (!ro.old && !rt.toNe) {
			continue
		}
		delivered = true
		if err := r.updateRole(ro, sender, m.Type, m.Wire, broadcast); err != nil {
			return err
		}
	}
	if !delivered && !broadcast {
		return fmt.Errorf("session: party %q sent us %s, which is not for any committee we are in", from, m.Type)
	}
	return nil
}

func (r *runner) updateRole(ro *role, sender *tss.PartyID, typ string, wire []byte, broadcast bool) error {
	parsed, err := tss.ParseWireMessage(wire, sender, broadcast)
	if err != nil {
		return fmt.Errorf("session: undecodable tss message from %q: %v", sender.Id, err)
	}
	if parsed.Type() != typ {
		return fmt.Errorf("session: party %q labelled a %s message as %s", sender.Id, parsed.Type(), typ)
	}
	if terr := safeUpdate(ro.party, parsed); terr != nil {
		return r.tssError("update", terr)
	}
	return nil
}
