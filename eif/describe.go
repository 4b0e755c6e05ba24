package eif

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// HashAlgorithm is the Measurements.HashAlgorithm string of nitro-cli ≤
// 1.4 (Rust's Debug output of sha2 0.9's Sha384). It is informational:
// nitro-cli 1.5 prints something else, so never compare it.
const HashAlgorithm = "Sha384 { ... }"

// Description is what `nitro-cli describe-eif` reports about an image
// (CLI src/lib.rs describe_eif, src/common/json_output.rs; notes §4).
// MarshalJSON writes nitro-cli's field names in its order.
type Description struct {
	EifVersion         uint16
	Arch               Arch // not in nitro-cli's output
	Measurements       Measurements
	IsSigned           bool
	SigningCertificate *CertificateInfo // only if signed
	CheckCRC           bool
	SignatureCheck     bool   // only meaningful if signed
	SignatureError     string // why SignatureCheck is false; not in nitro-cli's output
	Metadata           *Metadata
	Sections           []Section // not in nitro-cli's output
}

// CertificateInfo describes the signing certificate with OpenSSL's names,
// as nitro-cli prints it.
type CertificateInfo struct {
	IssuerName map[string]string // OpenSSL long attribute names ("commonName")
	Algorithm  string            // OpenSSL signature algorithm name ("ecdsa-with-SHA384")
	NotBefore  string            // ASN1_TIME_print form ("Jan  1 00:00:00 2024 GMT")
	NotAfter   string
	Signature  string // uppercase hex bytes joined by ':'
}

// Describe describes a checked image. The signature is verified at now
// (see Image.VerifySignature). CheckCRC is true: Read refuses a bad CRC.
func Describe(img *Image, now time.Time) *Description {
	d := &Description{
		EifVersion:   img.Header.Version,
		Arch:         img.Arch(),
		Measurements: img.Measurements,
		IsSigned:     img.Signature != nil,
		CheckCRC:     true,
		Metadata:     img.Metadata,
		Sections:     img.Sections,
	}
	if img.Signature != nil {
		d.SigningCertificate = certificateInfo(img.Signature.Certificate)
		if err := img.VerifySignature(now); err != nil {
			d.SignatureError = err.Error()
		} else {
			d.SignatureCheck = true
		}
	}
	return d
}

// MarshalJSON writes nitro-cli's layout (with 2-space indentation when
// encoded through json.MarshalIndent or an indenting Encoder).
func (d *Description) MarshalJSON() ([]byte, error) {
	o := object{
		{"EifVersion", d.EifVersion},
		{"Measurements", measurementsObject(d.Measurements)},
		{"IsSigned", d.IsSigned},
	}
	if d.IsSigned && d.SigningCertificate != nil {
		c := d.SigningCertificate
		o = append(o, member{"SigningCertificate", object{
			{"IssuerName", c.IssuerName},
			{"Algorithm", c.Algorithm},
			{"NotBefore", c.NotBefore},
			{"NotAfter", c.NotAfter},
			{"Signature", c.Signature},
		}})
	}
	o = append(o, member{"CheckCRC", d.CheckCRC})
	if d.IsSigned {
		o = append(o, member{"SignatureCheck", d.SignatureCheck})
	}
	if md := d.Metadata; md != nil {
		meta := object{
			{"BuildTime", md.BuildTime},
			{"BuildTool", md.BuildTool},
			{"BuildToolVersion", md.BuildToolVersion},
			{"OperatingSystem", md.OperatingSystem},
			{"KernelVersion", md.KernelVersion},
			{"DockerInfo", rawOrNull(md.DockerInfo)},
		}
		custom, err := flattenCustom(md.CustomMetadata)
		if err != nil {
			return nil, err
		}
		meta = append(meta, custom...)
		o = append(o, member{"ImageName", md.ImageName}, member{"ImageVersion", md.ImageVersion}, member{"Metadata", meta})
	}
	return o.MarshalJSON()
}

// MeasurementsJSON returns {"Measurements": {…}}, what nitro-cli
// build-enclave and sign-eif print.
func MeasurementsJSON(m Measurements) ([]byte, error) {
	return MarshalIndent(object{{"Measurements", measurementsObject(m)}})
}

// MarshalIndent encodes v as nitro-cli prints JSON: two-space indentation,
// no HTML escaping, no trailing newline.
func MarshalIndent(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func measurementsObject(m Measurements) object {
	o := object{
		{"HashAlgorithm", HashAlgorithm},
		{"PCR0", m.PCR0.String()},
		{"PCR1", m.PCR1.String()},
		{"PCR2", m.PCR2.String()},
	}
	if m.PCR8 != nil {
		o = append(o, member{"PCR8", m.PCR8.String()})
	}
	return o
}

func rawOrNull(r json.RawMessage) json.RawMessage {
	if isNull(r) {
		return json.RawMessage("null")
	}
	return r
}

// flattenCustom spreads a CustomMetadata object's keys into Metadata, as
// nitro-cli does; any other non-null value stays under its own name.
func flattenCustom(raw json.RawMessage) (object, error) {
	if isNull(raw) {
		return nil, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return object{{"CustomMetadata", raw}}, nil
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var o object
	for _, k := range keys {
		o = append(o, member{k, fields[k]})
	}
	return o, nil
}

// object is a JSON object that keeps its member order.
type object []member

type member struct {
	key   string
	value any
}

func (o object) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			buf.WriteByte(',')
		}
		k, err := marshalNoEscape(m.key)
		if err != nil {
			return nil, err
		}
		buf.Write(k)
		buf.WriteByte(':')
		v, err := marshalNoEscape(m.value)
		if err != nil {
			return nil, fmt.Errorf("eif: describe %s: %w", m.key, err)
		}
		buf.Write(v)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

func certificateInfo(c *x509.Certificate) *CertificateInfo {
	issuer := map[string]string{}
	for _, atv := range c.Issuer.Names {
		issuer[openSSLAttrName(atv.Type)] = fmt.Sprint(atv.Value)
	}
	hexes := make([]string, len(c.Signature))
	for i, b := range c.Signature {
		hexes[i] = fmt.Sprintf("%02X", b)
	}
	return &CertificateInfo{
		IssuerName: issuer,
		Algorithm:  openSSLSigAlgName(c.SignatureAlgorithm),
		NotBefore:  asn1TimePrint(c.NotBefore),
		NotAfter:   asn1TimePrint(c.NotAfter),
		Signature:  strings.Join(hexes, ":"),
	}
}

// asn1TimePrint formats t as OpenSSL's ASN1_TIME_print: "Jan  1 00:00:00 2024 GMT".
func asn1TimePrint(t time.Time) string { return t.UTC().Format("Jan _2 15:04:05 2006 GMT") }

var openSSLAttrNames = map[string]string{
	"2.5.4.3":                    "commonName",
	"2.5.4.4":                    "surname",
	"2.5.4.5":                    "serialNumber",
	"2.5.4.6":                    "countryName",
	"2.5.4.7":                    "localityName",
	"2.5.4.8":                    "stateOrProvinceName",
	"2.5.4.9":                    "streetAddress",
	"2.5.4.10":                   "organizationName",
	"2.5.4.11":                   "organizationalUnitName",
	"2.5.4.12":                   "title",
	"2.5.4.17":                   "postalCode",
	"2.5.4.42":                   "givenName",
	"1.2.840.113549.1.9.1":       "emailAddress",
	"0.9.2342.19200300.100.1.25": "domainComponent",
	"0.9.2342.19200300.100.1.1":  "userId",
}

func openSSLAttrName(oid asn1.ObjectIdentifier) string {
	if name, ok := openSSLAttrNames[oid.String()]; ok {
		return name
	}
	return oid.String()
}

func openSSLSigAlgName(a x509.SignatureAlgorithm) string {
	switch a {
	case x509.ECDSAWithSHA1:
		return "ecdsa-with-SHA1"
	case x509.ECDSAWithSHA256:
		return "ecdsa-with-SHA256"
	case x509.ECDSAWithSHA384:
		return "ecdsa-with-SHA384"
	case x509.ECDSAWithSHA512:
		return "ecdsa-with-SHA512"
	case x509.SHA256WithRSA:
		return "sha256WithRSAEncryption"
	case x509.SHA384WithRSA:
		return "sha384WithRSAEncryption"
	case x509.SHA512WithRSA:
		return "sha512WithRSAEncryption"
	case x509.SHA256WithRSAPSS, x509.SHA384WithRSAPSS, x509.SHA512WithRSAPSS:
		return "rsassaPss"
	case x509.PureEd25519:
		return "ED25519"
	}
	return a.String()
}
