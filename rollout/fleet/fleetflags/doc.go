// Package fleetflags gives a fleet one flag configuration: the engine is a
// flags source of whole, versioned documents that every host applies.
package fleetflags
