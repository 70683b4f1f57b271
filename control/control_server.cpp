#include "control/control_server.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

namespace nodeplane::control {

namespace {

constexpr size_t kReadChunk = 64 * 1024;
constexpr int kMaxEvents = 32;

std::string errnoText(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

// Whether process `pid` has `gid` among its supplementary groups (/proc/<pid>/status).
bool processInGroup(pid_t pid, gid_t gid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Groups:", 0) != 0) continue;
    std::istringstream groups(line.substr(7));
    unsigned long g;
    while (groups >> g)
      if (g == gid) return true;
  }
  return false;
}

bool isLiveSocket(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  bool live = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return live;
}

}  // namespace

Result<std::unique_ptr<ControlServer>> ControlServer::open(const ServerConfig& config,
                                                           Handler handler, ErrorReply errorReply) {
  std::unique_ptr<ControlServer> server(
      new ControlServer(config, std::move(handler), std::move(errorReply)));
  if (!config.group.empty()) {
    group* g = ::getgrnam(config.group.c_str());
    if (g == nullptr)
      return invalidArgument("--control-group: no group named '" + config.group + "'");
    server->groupId_ = g->gr_gid;
    server->hasGroup_ = true;
  }
  if (auto st = server->listen(); !st) return st.error();
  return server;
}

Status ControlServer::listen() {
  const std::string& path = config_.path;
  const std::string dir = path.substr(0, path.rfind('/'));
  struct stat st {};
  if (!dir.empty() && ::stat(dir.c_str(), &st) != 0) {
    if (::mkdir(dir.c_str(), 0750) != 0)
      return makeError(ErrorCode::kInternal, errnoText("control socket directory " + dir));
    if (hasGroup_ && ::chown(dir.c_str(), 0, groupId_) != 0)
      return makeError(ErrorCode::kInternal, errnoText("chown " + dir));
    ::chmod(dir.c_str(), 0750);  // whatever the umask said
  } else if (!dir.empty() && (st.st_mode & S_IRWXO) != 0) {
    spdlog::warn(
        "control socket directory {} is accessible to others (mode {:o}); the socket "
        "itself is 0660",
        dir, st.st_mode & 07777);
  }
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      return invalidArgument("--control-socket: " + path + " exists and is not a socket");
    if (isLiveSocket(path))
      return makeError(ErrorCode::kAlreadyExists,
                       "--control-socket: " + path + " is in use by a running daemon");
    ::unlink(path.c_str());  // stale, from a daemon that did not stop cleanly
  }

  listenFd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listenFd_ < 0) return makeError(ErrorCode::kInternal, errnoText("socket"));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  mode_t old = ::umask(0117);  // the socket is created 0660, never briefly wider
  int rc = ::bind(listenFd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  ::umask(old);
  if (rc != 0) return makeError(ErrorCode::kInternal, errnoText("bind " + path));
  ::chmod(path.c_str(), 0660);
  if (hasGroup_ && ::chown(path.c_str(), static_cast<uid_t>(-1), groupId_) != 0)
    return makeError(ErrorCode::kInternal, errnoText("chown " + path));
  if (::listen(listenFd_, 64) != 0) return makeError(ErrorCode::kInternal, errnoText("listen"));

  epollFd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epollFd_ < 0) return makeError(ErrorCode::kInternal, errnoText("epoll_create1"));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = listenFd_;
  ::epoll_ctl(epollFd_, EPOLL_CTL_ADD, listenFd_, &ev);
  spdlog::info("control socket listening on {}", path);
  return okStatus();
}

ControlServer::~ControlServer() {
  for (auto& [fd, client] : clients_) ::close(fd);
  if (listenFd_ >= 0) {
    ::close(listenFd_);
    ::unlink(config_.path.c_str());
  }
  if (epollFd_ >= 0) ::close(epollFd_);
}

void ControlServer::pollOnce(int timeoutMs) {
  epoll_event events[kMaxEvents];
  int n = ::epoll_wait(epollFd_, events, kMaxEvents, timeoutMs);
  for (int i = 0; i < n; ++i) {
    const int fd = events[i].data.fd;
    if (fd == listenFd_) {
      accept();
      continue;
    }
    auto it = clients_.find(fd);
    if (it == clients_.end()) continue;
    if (events[i].events & (EPOLLERR | EPOLLHUP)) {
      drop(fd);
      continue;
    }
    if (events[i].events & EPOLLOUT) onWritable(it->second);
    it = clients_.find(fd);
    if (it != clients_.end() && (events[i].events & EPOLLIN)) onReadable(it->second);
  }
  closeIdle(Clock::now());
}

void ControlServer::closeIdle(Clock::time_point now) {
  std::vector<int> idle;
  for (const auto& [fd, client] : clients_)
    if (now - client.lastActivity >= config_.idleTimeout) idle.push_back(fd);
  for (int fd : idle) {
    spdlog::debug("control socket: closing a connection idle for {} ms",
                  config_.idleTimeout.count());
    drop(fd);
  }
}

void ControlServer::refuse(int fd, const Error& error) {
  std::string reply = errorReply_(error);
  (void)!::write(fd, reply.data(), reply.size());
  ::close(fd);
}

bool ControlServer::peerAllowed(int fd, uid_t* uid, std::string* who) const {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return false;
  *uid = cred.uid;
  *who = "pid " + std::to_string(cred.pid) + " uid " + std::to_string(cred.uid) + " gid " +
         std::to_string(cred.gid);
  if (cred.uid == 0 || cred.uid == ::geteuid()) return true;
  return hasGroup_ && (cred.gid == groupId_ || processInGroup(cred.pid, groupId_));
}

void ControlServer::accept() {
  while (true) {
    int fd = ::accept4(listenFd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN: no more pending
    std::string who;
    uid_t uid = 0;
    if (!peerAllowed(fd, &uid, &who)) {
      spdlog::warn("control socket: refused {}", who);
      refuse(fd, makeError(ErrorCode::kPermissionDenied, "not allowed on this control socket"));
      continue;
    }
    if (clients_.size() >= config_.maxClients) {
      closeIdle(Clock::now());
      if (clients_.size() >= config_.maxClients) {
        refuse(fd, makeError(ErrorCode::kResourceExhausted, "too many control connections"));
        continue;
      }
    }
    if (uid != 0) {
      size_t same = 0;
      for (const auto& [other, client] : clients_) same += client.uid == uid;
      if (same >= config_.maxClientsPerUid) {
        spdlog::warn("control socket: refused {}: {} connections already", who, same);
        refuse(fd, makeError(ErrorCode::kResourceExhausted,
                             "too many control connections for uid " + std::to_string(uid) +
                                 " (at most " + std::to_string(config_.maxClientsPerUid) + ")"));
        continue;
      }
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.fd = fd;
    ::epoll_ctl(epollFd_, EPOLL_CTL_ADD, fd, &ev);
    Client& client = clients_[fd];
    client.fd = fd;
    client.uid = uid;
    client.lastActivity = Clock::now();
    spdlog::debug("control socket: connection from {}", who);
  }
}

void ControlServer::onReadable(Client& client) {
  const int fd = client.fd;
  char buf[kReadChunk];
  bool peerClosed = false;
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n > 0) {
      client.lastActivity = Clock::now();
      client.in.append(buf, static_cast<size_t>(n));
      if (client.in.size() > config_.maxRequestBytes + 1) break;
      continue;
    }
    if (n == 0)
      peerClosed = true;
    else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
      peerClosed = true;
    break;
  }
  size_t start = 0;
  while (!client.closeAfterWrite) {
    size_t nl = client.in.find('\n', start);
    if (nl == std::string::npos) break;
    std::string_view line(client.in.data() + start, nl - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() > config_.maxRequestBytes) {
      client.out +=
          errorReply_(makeError(ErrorCode::kTooLarge, "request of " + std::to_string(line.size()) +
                                                          " bytes exceeds the limit of " +
                                                          std::to_string(config_.maxRequestBytes)));
      client.closeAfterWrite = true;
    } else if (line.find('\0') != std::string_view::npos) {
      // Nothing after a NUL is seen by a C string reader: refuse rather than read half a line.
      client.out += errorReply_(makeError(ErrorCode::kBadRequest, "request contains a NUL byte"));
    } else if (!line.empty()) {
      client.out += handler_(line);
    }
    start = nl + 1;
  }
  client.in.erase(0, start);
  if (!client.closeAfterWrite && client.in.size() > config_.maxRequestBytes) {
    client.out += errorReply_(makeError(
        ErrorCode::kTooLarge,
        "request exceeds the limit of " + std::to_string(config_.maxRequestBytes) + " bytes"));
    client.closeAfterWrite = true;
    client.in.clear();
  }
  if (peerClosed && client.out.empty()) return drop(fd);
  if (peerClosed) client.closeAfterWrite = true;
  flush(client);
}

void ControlServer::onWritable(Client& client) {
  flush(client);
}

void ControlServer::flush(Client& client) {
  const int fd = client.fd;
  while (!client.out.empty()) {
    ssize_t n = ::send(fd, client.out.data(), client.out.size(), MSG_NOSIGNAL);
    if (n > 0) {
      client.out.erase(0, static_cast<size_t>(n));
      client.lastActivity = Clock::now();
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    return drop(fd);  // peer gone
  }
  if (client.out.empty() && client.closeAfterWrite) return drop(fd);
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP | (client.out.empty() ? 0u : static_cast<uint32_t>(EPOLLOUT));
  ev.data.fd = fd;
  ::epoll_ctl(epollFd_, EPOLL_CTL_MOD, fd, &ev);
}

void ControlServer::drop(int fd) {
  ::epoll_ctl(epollFd_, EPOLL_CTL_DEL, fd, nullptr);
  ::close(fd);
  clients_.erase(fd);
}

}  // namespace nodeplane::control
