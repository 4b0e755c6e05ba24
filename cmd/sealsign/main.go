// Command sealsign is the operator, counterparty and auditor CLI of the
// sealsign threshold-signing appliance.
//
// Exit codes: 0 success, 1 the operation failed (reason on stderr),
// 2 usage error.
package main

import (
	"fmt"
	"io"
	"os"
)

const usage = `sealsign — threshold-signing appliance CLI

Usage:
  sealsign <noun> <verb> [flags]

Commands:
  demo                 run a whole three-party appliance in a temp directory
  dev up|down|status   keep a local three-party appliance running
  key create|get|list  manage threshold keys on a running appliance
  gov-key create       create an admin, approver or client governance key
  request              ask for a signature: a signed, policy-checked request
  requests             list requests and what pending ones still need
  approve ID, reject ID
                       decide on a pending request, after checking it locally
  policy sign|show|push
                       sign, inspect and install governance policies
  audit verify|export|verify-export|report
                       check the parties' audit logs (chains, signatures,
                       attested boots, cross-party), export them, report ceremonies
  backup create|verify export shares encrypted to recovery keys; check a backup
  recover              restore a lost party from its backup (or --break-glass:
                       rebuild the private key offline from t+1 backups)
  recovery-key create  create an offline recovery key (x25519, mlkem768-x25519)
  eif describe|pcrs|build|sign|build-enclave
                       build, inspect and measure enclave image files

Run "sealsign <command> -h" for the flags of one command.
Exit codes: 0 ok, 1 failed, 2 usage.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// command is one top-level noun; it gets the arguments after the noun.
type command func(args []string, stdout, stderr io.Writer) int

var commands = map[string]command{}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "sealsign: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	return cmd(args[1:], stdout, stderr)
}
