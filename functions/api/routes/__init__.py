"""The API's route groups, one router each; functions.api.handler wires them to the resolver."""
