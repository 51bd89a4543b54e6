/* An intrusive FIFO of structs with a "next" member: queue_push() at the tail, queue_pop() at the head */
#pragma once

#define queue_push(head, tail, item)                            \
        do {                                                    \
                __typeof__(item) _item_ = (item);               \
                _item_->next = NULL;                            \
                if (tail)                                       \
                        (tail)->next = _item_;                  \
                else                                            \
                        (head) = _item_;                        \
                (tail) = _item_;                                \
        } while (0)

/* Evaluates to the head item, unlinked, or NULL when the queue is empty. */
#define queue_pop(head, tail)                                   \
        ({                                                      \
                __typeof__(head) _item_ = (head);               \
                if (_item_) {                                   \
                        (head) = _item_->next;                  \
                        if (!(head))                            \
                                (tail) = NULL;                  \
                }                                               \
                _item_;                                         \
        })
