// Package cputime reads the CPU time a process or a thread has used, for
// measurements on a machine shared with other work: wall time counts the
// waits for a core, CPU time does not, so it compares two builds measured
// under different loads far better.
package cputime
