// The control socket end to end in one process: a real Unix socket, the real ControlApi over a
// fake backend, clients on other threads or processes.
#include "control/control_server.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include "control/client.h"
#include "control/control_api.h"
#include "tests/unit/support/fake_backend.h"
#include "tests/unit/support/packet_builder.h"

namespace nodeplane::control {
namespace {

class ControlServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/np-ctl-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    base_ = tmpl;
    path_ = base_ + "/run/control.sock";
    NodeSettings s;
    s.nodeName = "node-cpu";
    s.nodeIp = testing::ip("192.168.50.10");
    s.podCidr = *Ipv4Prefix::parse("10.244.1.0/24");
    node_ = std::make_unique<NodeController>(s, backend_);
    ASSERT_TRUE(node_->start().ok());
    api_ = std::make_unique<ControlApi>(*node_, backend_);
    startServer();
  }
  void TearDown() override {
    stopServer();
    std::filesystem::remove_all(base_);
  }

  void startServer(size_t maxRequest = 4096) { startServer(ServerConfig{path_, "", maxRequest}); }
  void startServer(const ServerConfig& config) {
    auto server = ControlServer::open(
        config,
        [this](std::string_view line) {
          Json id;
          auto req = parseRequest(line, &id);
          if (!req) return formatReply(id, req.error());
          return formatReply(req->id, api_->handle(*req));
        },
        [](const Error& e) { return formatReply(nullptr, e); });
    ASSERT_TRUE(server.ok()) << server.error().message;
    server_ = std::move(*server);
    running_ = true;
    thread_ = std::thread([this] {
      while (running_) server_->pollOnce(20);
    });
  }
  void stopServer() {
    if (!thread_.joinable()) return;
    running_ = false;
    thread_.join();
    server_.reset();
  }

  // A connected client socket (no request sent).
  int connectRaw() {
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    return fd;
  }

  // Sends raw bytes, returns everything read until the server closes or `lines` lines arrived.
  std::string raw(const std::string& bytes, int lines = 1) {
    int fd = connectRaw();
    size_t off = 0;
    while (off < bytes.size()) {
      ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    std::string out;
    char buf[4096];
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    while (std::count(out.begin(), out.end(), '\n') < lines) {
      ssize_t n = ::read(fd, buf, sizeof(buf));
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    return out;
  }

  std::string base_, path_;
  testing::FakeBackend backend_;
  std::unique_ptr<NodeController> node_;
  std::unique_ptr<ControlApi> api_;
  std::unique_ptr<ControlServer> server_;
  std::atomic<bool> running_{false};
  std::thread thread_;
};

TEST_F(ControlServerTest, ServesStatusToAClient) {
  ControlClient client(path_);
  auto r = client.call("status");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ((*r)["node"], "node-cpu");
  EXPECT_EQ((*r)["protocol"], kProtocolVersion);
}

TEST_F(ControlServerTest, SocketIs0660InA0750Directory) {
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  ASSERT_EQ(::stat((base_ + "/run").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0750u);
}

TEST_F(ControlServerTest, BadRequestsGetErrorsAndTheConnectionStaysUsable) {
  std::string out =
      raw("this is not json\n{\"v\":1,\"id\":2,\"op\":\"nope\"}\n"
          "{\"v\":1,\"id\":3,\"op\":\"pod.attach\",\"args\":{\"name\":1}}\n"
          "{\"v\":1,\"id\":4,\"op\":\"status\"}\n",
          4);
  std::vector<Json> replies;
  size_t start = 0, nl;
  while ((nl = out.find('\n', start)) != std::string::npos) {
    replies.push_back(Json::parse(out.substr(start, nl - start)));
    start = nl + 1;
  }
  ASSERT_EQ(replies.size(), 4u) << out;
  EXPECT_EQ(replies[0]["error"]["code"], "bad_request");
  EXPECT_EQ(replies[1]["error"]["code"], "unknown_operation");
  EXPECT_EQ(replies[1]["id"], 2);
  EXPECT_EQ(replies[2]["error"]["code"], "invalid_argument");
  EXPECT_NE(replies[2]["error"]["message"].get<std::string>().find("namespace"), std::string::npos);
  EXPECT_TRUE(replies[3]["ok"].get<bool>());
  EXPECT_EQ(replies[3]["id"], 4);
}

TEST_F(ControlServerTest, OversizedRequestIsRefusedAndTheDaemonGoesOn) {
  std::string big =
      "{\"v\":1,\"op\":\"status\",\"args\":{\"pad\":\"" + std::string(10000, 'x') + "\"}}\n";
  std::string out = raw(big);
  auto reply = Json::parse(out.substr(0, out.find('\n')));
  EXPECT_EQ(reply["error"]["code"], "too_large");
  ControlClient client(path_);
  EXPECT_TRUE(client.call("status").ok());
}

TEST_F(ControlServerTest, AttachAndDetachThroughTheSocket) {
  ControlClient client(path_);
  auto r = client.call("pod.attach", {{"namespace", "ns-dev"},
                                      {"name", "c1"},
                                      {"containerId", "abc"},
                                      {"hostInterface", "veth1"},
                                      {"ip", "10.244.1.2"},
                                      {"mac", "0a:00:00:00:00:01"}});
  ASSERT_TRUE(r.ok()) << r.error().message;
  auto list = client.call("pod.list");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ((*list)["pods"].size(), 1u);
  EXPECT_EQ((*list)["pods"][0]["ip"], "10.244.1.2");
  auto bad = client.call("pod.attach", {{"namespace", "ns-dev"},
                                        {"name", "c2"},
                                        {"containerId", "def"},
                                        {"hostInterface", "veth2"},
                                        {"ip", "10.244.1.300"},
                                        {"mac", "0a:00:00:00:00:02"}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("'ip'"), std::string::npos);
  EXPECT_TRUE(client.call("pod.detach", {{"namespace", "ns-dev"}, {"name", "c1"}}).ok());
  auto gone = client.call("pod.detach", {{"containerId", "abc"}});
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code, ErrorCode::kNotFound);
}

TEST_F(ControlServerTest, DropsListsEveryReasonOnRequest) {
  ControlClient client(path_);
  auto r = client.call("drops", {{"all", true}});
  ASSERT_TRUE(r.ok());
  EXPECT_GT((*r)["drops"].size(), 20u);
  auto bad = client.call("drops", {{"all", "yes"}});
  EXPECT_FALSE(bad.ok());
}

TEST_F(ControlServerTest, ASecondDaemonCannotTakeALiveSocket) {
  auto second = ControlServer::open(
      ServerConfig{path_, "", 4096}, [](std::string_view) { return std::string(); },
      [](const Error&) { return std::string(); });
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.error().message.find("in use"), std::string::npos);
}

TEST_F(ControlServerTest, AStaleSocketIsReplaced) {
  stopServer();
  // Leave a socket file behind with nobody listening (a daemon killed with SIGKILL).
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ::close(fd);
  startServer();
  EXPECT_TRUE(ControlClient(path_).call("status").ok());
}

TEST_F(ControlServerTest, PeersWithoutPermissionAreRefusedBeforeAnythingIsRead) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to test another uid";
  ::chmod(path_.c_str(), 0666);  // let the other uid reach the socket at all
  ::chmod((base_ + "/run").c_str(), 0755);
  ::chmod(base_.c_str(), 0755);
  pid_t child = ::fork();
  if (child == 0) {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) _exit(3);
    auto r = ControlClient(path_).call("status");
    _exit(!r.ok() && r.error().code == ErrorCode::kPermissionDenied ? 0 : 1);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: not refused, 3: could not change uid";
}

TEST_F(ControlServerTest, ARequestWithANulByteIsRefused) {
  // A C-string reader would see a valid request and ignore the rest of the line.
  std::string out = raw(
      std::string("{\"v\":1,\"op\":\"status\"}\0garbage\n", 30) + "{\"v\":1,\"op\":\"status\"}\n",
      2);
  const auto first = Json::parse(out.substr(0, out.find('\n')));
  EXPECT_EQ(first["error"]["code"], "bad_request") << out;
  EXPECT_NE(first["error"]["message"].get<std::string>().find("NUL"), std::string::npos);
  const auto second = Json::parse(out.substr(out.find('\n') + 1));
  EXPECT_TRUE(second["ok"].get<bool>()) << "the connection stays usable";
}

TEST_F(ControlServerTest, IdleConnectionsAreClosedAndFreeTheirSlots) {
  stopServer();
  ServerConfig config{path_, "", 4096};
  config.maxClients = 4;
  config.idleTimeout = std::chrono::milliseconds(300);
  startServer(config);
  // Four clients that connect and say nothing hold every slot...
  std::vector<int> idle;
  for (int i = 0; i < 4; ++i) idle.push_back(connectRaw());
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto refused = ControlClient(path_).call("status");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::kResourceExhausted);
  // ... until the idle timeout closes them.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  for (int fd : idle) {
    char c;
    EXPECT_EQ(::read(fd, &c, 1), 0) << "closed by the server";
    ::close(fd);
  }
  EXPECT_TRUE(ControlClient(path_).call("status").ok());
}

TEST_F(ControlServerTest, ANonRootUidCannotTakeEverySlot) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to test another uid";
  stopServer();
  ServerConfig config{path_, "nogroup", 4096};
  config.maxClients = 8;
  config.maxClientsPerUid = 3;
  startServer(config);
  ::chmod((base_ + "/run").c_str(), 0755);  // let the other uid reach the socket at all
  ::chmod(base_.c_str(), 0755);
  pid_t child = ::fork();
  if (child == 0) {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) _exit(3);
    std::vector<int> fds;
    for (int i = 0; i < 3; ++i) fds.push_back(connectRaw());
    ::usleep(100000);
    auto r = ControlClient(path_).call("status");  // the fourth
    const bool refused = !r.ok() && r.error().code == ErrorCode::kResourceExhausted &&
                         r.error().message.find("uid 65534") != std::string::npos;
    ::usleep(200000);  // keep the three open while the parent (root) checks
    _exit(refused ? 0 : 1);
  }
  ::usleep(200000);
  EXPECT_TRUE(ControlClient(path_).call("status").ok()) << "root still gets in";
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: the fourth connection was not refused, 3: no setuid";
}

}  // namespace
}  // namespace nodeplane::control
