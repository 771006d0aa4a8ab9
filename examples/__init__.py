"""Your own components beside the classics: an optimizer and a layer that this library does not
ship, named in a study file by import path ("examples.lion:Lion")."""
