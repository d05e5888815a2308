"""Resource groups: the Dask clusters jobs run on. The embedded (or configured) cluster is ``default``;
an operator adds more by scheduler address, and a workspace's Owner or Administrator picks its group."""
