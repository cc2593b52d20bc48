"""Root-field resolvers: plain async functions reading loaders and the store from the context."""
