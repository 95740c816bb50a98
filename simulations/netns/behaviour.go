package netns

// Behaviour is an RFC 4787 NAT mapping or filtering behaviour.
type Behaviour int

// The RFC 4787 behaviours (sections 4.1 and 5).
const (
	Unknown Behaviour = iota
	EndpointIndependent
	AddressDependent
	AddressAndPortDependent
)

func (b Behaviour) String() string {
	switch b {
	case EndpointIndependent:
		return "endpoint-independent"
	case AddressDependent:
		return "address-dependent"
	case AddressAndPortDependent:
		return "address-and-port-dependent"
	}
	return "unknown"
}

// Recipe is one way of configuring a Linux NAT router, named by what it
// gives. The rules of each are quoted in nat.go.
type Recipe int

// The recipes.
const (
	// Masquerade is iptables MASQUERADE: endpoint-independent mapping
	// (except where two hosts' mappings collide, see doc.go),
	// address-and-port-dependent filtering.
	Masquerade Recipe = iota + 1
	// MasqueradeRandomFully is MASQUERADE --random-fully: a new random
	// port per destination endpoint ("symmetric"), and
	// address-and-port-dependent filtering.
	MasqueradeRandomFully
	// AddressDependentFiltering is MASQUERADE plus nftables state that
	// admits UDP from any port of an address the mapping has sent to.
	AddressDependentFiltering
	// EndpointIndependentFiltering is MASQUERADE plus nftables state that
	// admits UDP from anyone to a mapping while the mapping exists.
	EndpointIndependentFiltering
)

// Recipes lists every recipe, for table tests.
func Recipes() []Recipe {
	return []Recipe{Masquerade, MasqueradeRandomFully, AddressDependentFiltering, EndpointIndependentFiltering}
}

func (r Recipe) String() string {
	switch r {
	case Masquerade:
		return "masquerade"
	case MasqueradeRandomFully:
		return "masquerade_random_fully"
	case AddressDependentFiltering:
		return "address_dependent_filtering"
	case EndpointIndependentFiltering:
		return "endpoint_independent_filtering"
	}
	return "unknown_recipe"
}

// Mapping is the mapping behaviour the recipe gives (for UDP).
func (r Recipe) Mapping() Behaviour {
	switch r {
	case Masquerade, AddressDependentFiltering, EndpointIndependentFiltering:
		return EndpointIndependent
	case MasqueradeRandomFully:
		return AddressAndPortDependent
	}
	return Unknown
}

// Filtering is the filtering behaviour the recipe gives (for UDP).
func (r Recipe) Filtering() Behaviour {
	switch r {
	case Masquerade, MasqueradeRandomFully:
		return AddressAndPortDependent
	case AddressDependentFiltering:
		return AddressDependent
	case EndpointIndependentFiltering:
		return EndpointIndependent
	}
	return Unknown
}
