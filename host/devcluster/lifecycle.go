package devcluster

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/sealsign/sealsign/governance/ceremony"
	"github.com/sealsign/sealsign/governance/keys"
	"github.com/sealsign/sealsign/host/client"
	"github.com/sealsign/sealsign/host/server"
)

// devAdmins loads the dev admins that sign ceremonies (DevCeremonyAdmins).
func (c *Cluster) devAdmins() ([]*keys.PrivateKey, error) {
	var admins []*keys.PrivateKey
	for _, id := range DevCeremonyAdmins {
		k, err := c.GovernanceKey(id)
		if err != nil {
			return nil, err
		}
		admins = append(admins, k)
	}
	return admins, nil
}

// CreateKeyAmong runs a keygen among parties at threshold from the host of
// parties[0], authorised by a ceremony admin-1 and admin-2 sign.
func (c *Cluster) CreateKeyAmong(ctx context.Context, algorithm string, parties []string, threshold int) (*server.KeyJSON, error) {
	if len(parties) == 0 {
		return nil, errors.New("devcluster: no committee")
	}
	admins, err := c.devAdmins()
	if err != nil {
		return nil, err
	}
	parties = slices.Clone(parties)
	slices.Sort(parties)
	cer, err := client.NewCeremony(c.ClusterID(), ceremony.KindKeygen, algorithm, parties, threshold, 10*time.Minute, admins...)
	if err != nil {
		return nil, err
	}
	return c.Client(parties[0]).CreateKeyAmong(ctx, algorithm, cer, parties, threshold)
}

// Reshare refreshes keyID (newParties nil) or moves it to newParties at
// newThreshold, coordinated from coord's host (a member of the key's
// committee), authorised by a ceremony admin-1 and admin-2 sign for the
// key's current epoch. Like the CLI, it completes an interrupted reshare.
func (c *Cluster) Reshare(ctx context.Context, coord, keyID string, newParties []string, newThreshold int) (*server.ReshareResponse, error) {
	cl := c.Client(coord)
	k, err := cl.Key(ctx, keyID)
	if err != nil {
		return nil, err
	}
	admins, err := c.devAdmins()
	if err != nil {
		return nil, err
	}
	newParties = slices.Clone(newParties)
	slices.Sort(newParties)
	cer := ceremony.Ceremony{ClusterID: c.ClusterID(), Kind: ceremony.KindRefresh, Algorithm: k.Algorithm, KeyID: k.ID, Epoch: k.Epoch,
		Parties: k.Parties, Threshold: k.Threshold}
	if len(newParties) > 0 && (!slices.Equal(newParties, k.Parties) || newThreshold != k.Threshold) {
		cer.Kind, cer.NewParties, cer.NewThreshold = ceremony.KindReshare, newParties, newThreshold
	}
	signed, err := client.SignCeremony(cer, 10*time.Minute, admins...)
	if err != nil {
		return nil, err
	}
	return cl.Reshare(ctx, keyID, server.ReshareRequest{Ceremony: signed, NewParties: newParties, NewThreshold: newThreshold})
}
