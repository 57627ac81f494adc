/* ldm-models.h: where the plug-in looks for model files, and what it can
 * tell about one without running it (quick hash).
 */
#ifndef GIMP_LDM_MODELS_H
#define GIMP_LDM_MODELS_H

#include <glib.h>

/* Model folders, in search order: `configured` (a G_SEARCHPATH_SEPARATOR
 * list, may be NULL or empty), then $LDM_MODEL_PATH, then
 * <GIMP profile>/gimp-ldm/models, then the installed data folder. */
gchar  **gimp_ldm_models_search_path (const gchar *configured);
/* Absolute path of `name` in the first folder holding it, or NULL. */
gchar   *gimp_ldm_models_find        (const gchar *configured, const gchar *name);
/* Sorted list of model files and diffusers folders found (full paths). */
GList   *gimp_ldm_models_list        (const gchar *configured);
/* The search path as one ':'-separated string (the engine's model_dirs). */
gchar   *gimp_ldm_models_roots      (const gchar *configured);
/* Add-ons (LoRAs, embeddings) in the model folders, in any of the layouts
 * users have (AUTOMATIC1111, ComfyUI, ours: see ldm_models_scan): a list of
 * GimpLdmAddon, sorted by name. family NULL: all families. */
typedef struct
{
  gchar *name;      /* file stem: what prompts and the loras argument use */
  gchar *path;
  gchar *family;    /* "sd1", "sdxl", ... or "" */
} GimpLdmAddon;
GList   *gimp_ldm_models_addons     (const gchar *configured, gint kind,
                                     const gchar *family);
void     gimp_ldm_addon_free        (GimpLdmAddon *addon);
/* "sha256-1m:<hex>" over the first MiB and the size; NULL if unreadable. */
gchar   *gimp_ldm_models_quick_hash  (const gchar *path);

#endif /* GIMP_LDM_MODELS_H */
