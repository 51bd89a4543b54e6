/* A storage fd that can be taken back: the block protocol over a socket, served by a thread */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* A user on the system bus gets the storage of a DUT it holds as one end of a socket pair that
 * speaks the block protocol (libjumpstarter/block-protocol.h, as the data streams do), not as the
 * storage's own fd: when the lease ends, block_server_free() shuts the socket down and the user's
 * fd stops working, which a passed file descriptor of the image itself would not. */
typedef struct BlockServer BlockServer;

/* Takes storage_fd (opened for reading, or reading and writing when writable) on success; on
 * failure it stays the caller's. Returns the other end of the socket pair in *ret_fd (O_CLOEXEC,
 * the caller's to pass on and close). */
int block_server_start(int storage_fd, uint64_t size, bool writable, int *ret_fd, BlockServer **ret);

/* Cuts the socket (the peer's next request fails, its fd reads end of file), waits for the thread
 * to finish the request it is in, and closes the storage fd. */
BlockServer *block_server_free(BlockServer *b);
