// Noticing that a client went away while its request is still being worked on.
// cpp-httplib only finds out when a write fails, which for a non-streamed answer (or a
// stream still reading its prompt) is only at the end. The handler therefore finds its
// connection's socket (the one whose two ends match the request's addresses) and polls
// it for a hang-up between scheduler steps, so the sequence and its KV entries are freed
// at the next step.
#pragma once
#include <string>

namespace mlamoe::server {

// The socket of the connection local_addr:local_port <-> remote_addr:remote_port
// (numeric host strings, as cpp-httplib reports them), or -1.
int find_connection_socket(const std::string& local_addr, int local_port, const std::string& remote_addr, int remote_port);

// cpp-httplib (as Debian builds it) listens with a backlog of 5: a burst of clients
// overflows it. Finds the listening socket on `port` and raises its backlog (calling
// listen() again on a listening socket does that on Linux). Returns false if not found.
bool raise_listen_backlog(int port, int backlog);

// True if the peer closed or reset the connection (never blocks).
bool peer_hung_up(int fd);

}  // namespace mlamoe::server
