#include "server/connection.h"

#include <dirent.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cstdlib>

namespace mlamoe::server {

namespace {

bool endpoint_of(int fd, bool peer, std::string& host, int& port) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if ((peer ? getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) : getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len)) != 0)
    return false;
  if (addr.ss_family == AF_INET) port = ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  else if (addr.ss_family == AF_INET6) port = ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
  else return false;
  char buf[NI_MAXHOST];
  if (getnameinfo(reinterpret_cast<sockaddr*>(&addr), len, buf, sizeof(buf), nullptr, 0, NI_NUMERICHOST) != 0) return false;
  host = buf;
  return true;
}

// Calls visit(fd) for every socket this process has open, until visit returns true.
template <class Visit>
void for_each_socket(Visit&& visit) {
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return;
  while (dirent* e = readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || fd == dirfd(dir)) continue;
    struct stat st{};
    if (fstat(static_cast<int>(fd), &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    if (visit(static_cast<int>(fd))) break;
  }
  closedir(dir);
}

}  // namespace

int find_connection_socket(const std::string& local_addr, int local_port, const std::string& remote_addr, int remote_port) {
  int found = -1;
  for_each_socket([&](int fd) {
    std::string lh, rh;
    int lp = -1, rp = -1;
    if (!endpoint_of(fd, false, lh, lp) || lp != local_port) return false;
    if (!endpoint_of(fd, true, rh, rp) || rp != remote_port) return false;
    if (lh != local_addr || rh != remote_addr) return false;
    found = fd;
    return true;
  });
  return found;
}

bool raise_listen_backlog(int port, int backlog) {
  bool done = false;
  for_each_socket([&](int fd) {
    int listening = 0;
    socklen_t len = sizeof(listening);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening) return false;
    std::string host;
    int p = -1;
    if (endpoint_of(fd, false, host, p) && p == port) done = ::listen(fd, backlog) == 0 || done;
    return false;  // every listening socket on the port (IPv4 and IPv6)
  });
  return done;
}

bool peer_hung_up(int fd) {
  if (fd < 0) return false;
  pollfd p{fd, POLLRDHUP, 0};
  if (poll(&p, 1, 0) <= 0) return false;
  return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

}  // namespace mlamoe::server
