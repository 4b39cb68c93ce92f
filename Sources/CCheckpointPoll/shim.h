#include <errno.h>
#include <poll.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/// Waits until `fd` is readable or `nanoseconds` have passed (ppoll's nanosecond timeout,
/// which Swift's Glibc module does not declare): 1 when readable, 0 on timeout, -1 on error
/// (errno set; EINTR means try again).
static inline int checkpoint_wait_readable(int fd, long long nanoseconds) {
    struct pollfd descriptor = { fd, POLLIN, 0 };
    struct timespec timeout = { (time_t)(nanoseconds / 1000000000LL), (long)(nanoseconds % 1000000000LL) };
    long ready = syscall(SYS_ppoll, &descriptor, 1, &timeout, NULL, 0);
    return ready > 0 ? 1 : (int)ready;
}
