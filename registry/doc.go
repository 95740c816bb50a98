// Package registry holds one signed record per node: the overlay's
// directory of addresses, NAT classes, relays, onion keys and services.
package registry
