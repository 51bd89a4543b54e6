/* jmp-bus-storage DUT: opens a DUT's storage through the system bus API as the calling user, as any
 * D-Bus client would, and keeps the passed fd: it writes one block through it, then waits for a line
 * on stdin and writes again, printing "ok" or the errno name of each write. The tests use it to check
 * that a passed fd stops working when the lease ends. Not installed. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include "agent-api.h"
#include "block-protocol.h"

/* One write of 512 bytes at offset 0 through the block protocol (the fd is a socket) or pwrite. */
static int write_block(int fd) {
        uint8_t header[BLOCK_REQUEST_SIZE], answer[BLOCK_ANSWER_SIZE], data[512];
        BlockRequest q = { .op = BLOCK_OP_WRITE, .length = sizeof data, .offset = 0 };
        int32_t result;

        memset(data, 0x5a, sizeof data);
        block_request_encode(&q, header);
        if (send(fd, header, sizeof header, MSG_NOSIGNAL) != (ssize_t) sizeof header ||
            send(fd, data, sizeof data, MSG_NOSIGNAL) != (ssize_t) sizeof data)
                return -errno ?: -EIO;
        if (recv(fd, answer, sizeof answer, MSG_WAITALL) != (ssize_t) sizeof answer)
                return -EIO; /* end of file: the stream was cut */
        if (!block_answer_decode(answer, &result))
                return -EBADMSG;
        return result < 0 ? result : 0;
}

static void report(int r) {
        if (r < 0)
                printf("%s\n", strerrorname_np(-r) ?: "error");
        else
                printf("ok\n");
        fflush(stdout);
}

int main(int argc, char *argv[]) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        uint64_t size, session;
        sd_bus *bus = NULL;
        char line[64];
        int fd, r;

        if (argc != 2) {
                fprintf(stderr, "Usage: %s DUT\n", argv[0]);
                return 2;
        }
        r = sd_bus_open_system(&bus);
        if (r < 0) {
                fprintf(stderr, "No system bus: %s\n", strerror(-r));
                return 1;
        }
        r = sd_bus_call_method(bus, AGENT_BUS_NAME, AGENT_OBJECT_PATH, AGENT_INTERFACE, "OpenStorage", &error,
                               &reply, "sb", argv[1], 1);
        if (r < 0) {
                fprintf(stderr, "OpenStorage: %s\n", error.message ?: strerror(-r));
                return 1;
        }
        r = sd_bus_message_read(reply, "htt", &fd, &size, &session);
        if (r < 0) {
                fprintf(stderr, "OpenStorage answered: %s\n", strerror(-r));
                return 1;
        }
        fd = dup(fd);
        report(write_block(fd));
        if (!fgets(line, sizeof line, stdin))
                return 0;
        report(write_block(fd));
        close(fd);
        sd_bus_message_unref(reply);
        sd_bus_unref(bus);
        return 0;
}
