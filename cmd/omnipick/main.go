// Command omnipick runs the Omnipick recommendation service and its tools.
//
//	omnipick serve [-addr 127.0.0.1:7070] [-data ./data] [-demo]
//
// Only this package reads flags and the environment; everything below it
// takes options structs.
package main

import (
	"fmt"
	"os"
)

const usage = `omnipick: real-time omnichannel recommendations

usage:
  omnipick serve [flags]    run the HTTP service (see omnipick serve -h)
  omnipick cluster -nodes 3 -addr 127.0.0.1:7071 -data D
                            start N clustered node processes on this machine (docs/cluster.md)
  omnipick repair -data D   truncate a corrupt write-ahead log at its last good record
  omnipick bench load ...   load-test a running server (see bench/README.md)
  omnipick eval -set all    offline evaluation on ../shared/data against baselines
  omnipick help             this text
`

func main() {
	args := os.Args[1:]
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = runServe(args)
	case "repair":
		err = runRepair(args)
	case "cluster":
		err = runCluster(args)
	case "bench":
		err = runBench(args)
	case "eval":
		err = runEval(args)
	case "help", "-h", "--help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "omnipick: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "omnipick %s: %v\n", cmd, err)
		os.Exit(1)
	}
}
