"""Where bytes live: the filesystem layer (``fs``), the store's layout (``store``) and Keras model files
(``keras_files``)."""
