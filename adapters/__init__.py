"""Where partner API data comes from: the ports the API handlers call, and their backends.

``ports`` declares one interface per API family, free of SQL and HTTP. The built-in
reference store (``reference_store``) is the first implementation; connectors to
departmental editors and the France Travail gateway come next.
"""
