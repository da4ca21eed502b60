// Command omnipick runs the Omnipick recommendation service and its tools.
//
//	omnipick serve [-addr 127.0.0.1:7070] [-data ./data] [-demo]
//	omnipick help [command]
//
// Only this package reads flags and the environment; everything below it
// takes options structs.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// command is one subcommand: its name, one line on what it does, and the
// function that runs it with the arguments after its name.
type command struct {
	name, args, summary string
	run                 func(args []string) error
}

// commands lists the subcommands in the order usage prints them. help is
// handled by main itself.
func commands() []command {
	return []command{
		{"serve", "[flags]", "run the HTTP service (-demo: with the built-in demo world)", runServe},
		{"cluster", "-nodes N", "start N clustered node processes on this machine (docs/cluster.md)", runCluster},
		{"repair", "-data DIR", "truncate a corrupt write-ahead log at its last good record", runRepair},
		{"bench", "TOOL [flags]", "load-test a running server, measure the bench world (see bench/README.md)", runBench},
		{"eval", "[flags]", "offline evaluation on ../shared/data against baselines", runEval},
	}
}

// usage is the list of subcommands, one line each.
func usage() string {
	var b strings.Builder
	b.WriteString("omnipick: real-time omnichannel recommendations\n\nusage:\n")
	for _, c := range commands() {
		fmt.Fprintf(&b, "  omnipick %-20s %s\n", c.name+" "+c.args, c.summary)
	}
	fmt.Fprintf(&b, "  omnipick %-20s %s\n", "help [COMMAND]", "this text, or a command's flags")
	b.WriteString("\nStart with: omnipick serve -demo   (then open http://127.0.0.1:7070/explore)\n")
	return b.String()
}

// errUsage marks a command line that could not be parsed: the message and
// the usage are printed already, and the exit code is 2.
var errUsage = errors.New("usage")

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the command line args and returns the exit code: 0 on success
// and for help, 2 for a command line that cannot be parsed, 1 when the
// command failed.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage())
		return 2
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		if name == "help" && len(rest) > 0 && rest[0] != "help" {
			// "help CMD ..." is "CMD ... -h".
			name, rest = rest[0], append(rest[1:len(rest):len(rest)], "-h")
			break
		}
		fmt.Fprint(stdout, usage())
		return 0
	}
	for _, c := range commands() {
		if c.name != name {
			continue
		}
		err := c.run(rest)
		switch {
		case err == nil, errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		}
		fmt.Fprintf(stderr, "omnipick %s: %v\n", name, err)
		return 1
	}
	if strings.HasPrefix(name, "-") {
		fmt.Fprintf(stderr, "omnipick: flags come after the command, e.g. omnipick serve %s\n\n%s", strings.Join(args, " "), usage())
	} else {
		fmt.Fprintf(stderr, "omnipick: unknown command %q\n\n%s", name, usage())
	}
	return 2
}

// newFlags returns the flag set of "omnipick NAME": its usage names the
// command, says what it does and lists its flags.
func newFlags(name, args, summary string) *flag.FlagSet {
	fs := flag.NewFlagSet("omnipick "+name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: omnipick %s %s\n\n%s\n\nflags:\n", name, args, summary)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args into fs. -h prints the usage on stdout and
// returns flag.ErrHelp (exit 0); a bad flag prints the error and the usage
// on stderr and returns errUsage (exit 2); so does an argument left over.
func parseFlags(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(os.Stdout)
		fs.Usage()
		return flag.ErrHelp
	case err == nil && fs.NArg() > 0:
		err = fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err != nil {
		fs.SetOutput(os.Stderr)
		fmt.Fprintf(os.Stderr, "%s: %v\n", fs.Name(), err)
		fs.Usage()
		return errUsage
	}
	return nil
}
