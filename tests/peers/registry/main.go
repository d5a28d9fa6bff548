// Command referrers-registry serves the OCI distribution API, with the
// OCI 1.1 referrers API (GET /v2/NAME/referrers/DIGEST), from memory, for
// the tests and benchmarks. It is go-containerregistry's pkg/registry with
// WithReferrersSupport(true): `crane registry serve` does not turn that on.
//
// It listens on 127.0.0.1 only, on the port given by -port (0: a free one),
// prints the port on a line of its own to standard output once it accepts
// connections, and writes one line per request ("METHOD URL [STATUS CODE]")
// to the file given by -log. It runs until it is killed or, with
// -stop-on-eof, until its standard input ends (a test process that holds
// the other end of a pipe and exits stops it that way too).
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"

	"github.com/google/go-containerregistry/pkg/registry"
)

func main() {
	port := flag.Int("port", 0, "TCP port on 127.0.0.1 (0: any free port)")
	logPath := flag.String("log", "", "file to append one line per request to (default: standard error)")
	stopOnEOF := flag.Bool("stop-on-eof", false, "exit when standard input reaches its end")
	flag.Parse()

	out := os.Stderr
	if *logPath != "" {
		f, err := os.OpenFile(*logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			log.Fatalf("referrers-registry: cannot open the log %s: %v", *logPath, err)
		}
		out = f
	}
	listener, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		log.Fatalf("referrers-registry: cannot listen on 127.0.0.1:%d: %v", *port, err)
	}
	handler := registry.New(
		registry.Logger(log.New(out, "", 0)),
		registry.WithReferrersSupport(true),
	)
	if *stopOnEOF {
		go func() {
			io.Copy(io.Discard, os.Stdin)
			os.Exit(0)
		}()
	}
	fmt.Println(listener.Addr().(*net.TCPAddr).Port)
	log.Fatal(http.Serve(listener, handler))
}
