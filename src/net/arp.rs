//! Neighbour (ARP) cache shared by all workers: one writer, lock-free readers.
